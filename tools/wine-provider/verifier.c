/*
 * The provider's Driver-Verifier-like part: the log, the settings, the import thunks put into
 * every driver that imports netio.sys (pool, IRP and MDL accounting, ExAllocatePool2, fault
 * injection, DbgPrintEx capture, KeBugCheckEx), and the run lifecycle (a run starts when such a
 * driver is loaded and ends, with the verdict line, when it is unloaded or the process exits).
 */
#include "provider.h"

struct settings settings;

static CRITICAL_SECTION log_cs;
static HANDLE log_file = INVALID_HANDLE_VALUE;
static LONG violations;
static DWORD run_start;
static BOOL run_active;
static void *driver_base;
static DRIVER_OBJECT *driver_object; /* the run's driver, from its DriverEntry */
static void *notify_cookie;
static HMODULE self_module;

/* ------------------------------------------------------------------ log */

void log_raw(const char *text)
{
    DWORD written;
    EnterCriticalSection(&log_cs);
    if (log_file != INVALID_HANDLE_VALUE)
        WriteFile(log_file, text, strlen(text), &written, NULL);
    LeaveCriticalSection(&log_cs);
}

static void vlog(const char *prefix, const char *fmt, va_list args)
{
    char line[1024];
    int n = snprintf(line, sizeof(line), "[%6lu] provider: %s", GetTickCount() - run_start, prefix);
    vsnprintf(line + n, sizeof(line) - n - 2, fmt, args);
    strcat(line, "\n");
    log_raw(line);
}

void plog(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vlog("", fmt, args);
    va_end(args);
}

void violation(const char *rule, const char *fmt, ...)
{
    char prefix[128];
    va_list args;
    InterlockedIncrement(&violations);
    snprintf(prefix, sizeof(prefix), "VIOLATION %s: ", rule);
    va_start(args, fmt);
    vlog(prefix, fmt, args);
    va_end(args);
}

LONG violation_count(void) { return violations; }

/* Whether `p` lies in the loaded driver image (its code, for a completion routine). */
BOOL in_driver_image(const void *p)
{
    IMAGE_NT_HEADERS *nt;
    if (!driver_base || !(nt = RtlImageNtHeader(driver_base))) return FALSE;
    return (const char *)p >= (const char *)driver_base &&
           (const char *)p < (const char *)driver_base + nt->OptionalHeader.SizeOfImage;
}

/* ------------------------------------------------------------------ settings */

#define SETTINGS_KEY L"System\\CurrentControlSet\\Services\\netio-test"

static DWORD reg_dword(HKEY key, const WCHAR *name, DWORD dflt)
{
    DWORD value, size = sizeof(value), type;
    if (key && !RegQueryValueExW(key, name, NULL, &type, (BYTE *)&value, &size) && type == REG_DWORD)
        return value;
    return dflt;
}

static void read_settings(void)
{
    HKEY key = NULL;
    WCHAR path[MAX_PATH];
    DWORD size = sizeof(path) - sizeof(WCHAR), type;

    if (RegOpenKeyExW(HKEY_LOCAL_MACHINE, SETTINGS_KEY, 0, KEY_READ, &key)) key = NULL;
    settings.fail_allocation = reg_dword(key, L"FailAllocation", 0);
    settings.attach_mode = reg_dword(key, L"Attach", 0);
    settings.attach_delay_ms = reg_dword(key, L"AttachDelayMs", 500);
    settings.detach_after_ms = reg_dword(key, L"DetachAfterMs", 0);
    settings.reattach_after_ms = reg_dword(key, L"ReattachAfterMs", 300);
    settings.inline_completion = reg_dword(key, L"InlineCompletion", 0);
    settings.short_receive = reg_dword(key, L"ShortReceive", 0);
    settings.bind_failure = reg_dword(key, L"BindFailure", 0);
    settings.kill_listener = reg_dword(key, L"KillListener", 0);
    settings.grace_ms = reg_dword(key, L"GraceMs", 10000);

    EnterCriticalSection(&log_cs);
    if (log_file != INVALID_HANDLE_VALUE) CloseHandle(log_file);
    log_file = INVALID_HANDLE_VALUE;
    memset(path, 0, sizeof(path));
    if (key && !RegQueryValueExW(key, L"LogFile", NULL, &type, (BYTE *)path, &size) && type == REG_SZ)
        log_file = CreateFileW(path, FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                               NULL, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    LeaveCriticalSection(&log_cs);
    if (key) RegCloseKey(key);
    plog("settings: FailAllocation=%lu Attach=%lu AttachDelayMs=%lu DetachAfterMs=%lu ReattachAfterMs=%lu "
         "InlineCompletion=%lu ShortReceive=%lu BindFailure=%lu KillListener=%lu GraceMs=%lu",
         settings.fail_allocation, settings.attach_mode, settings.attach_delay_ms, settings.detach_after_ms,
         settings.reattach_after_ms, settings.inline_completion, settings.short_receive,
         settings.bind_failure, settings.kill_listener, settings.grace_ms);
}

/* ------------------------------------------------------------------ object tracking */

enum obj_kind { OBJ_POOL, OBJ_IRP, OBJ_MDL };

struct tracked
{
    struct tracked *next;
    void *ptr;
    enum obj_kind kind;
    ULONG tag;
    SIZE_T size;
    LONG in_flight;      /* IRP: inside a WSK call not yet completed; MDL: pending requests using it */
    const char *op;
};

#define BUCKETS 4096
static struct tracked *table[BUCKETS];
static CRITICAL_SECTION table_cs;
static LONG alloc_seq;
static LONG count_alloc[3], count_free[3];
static const char *kind_name[3] = { "pool", "IRP", "MDL" };

static unsigned bucket(void *p) { return (unsigned)(((ULONG_PTR)p >> 4) * 2654435761u) % BUCKETS; }

static struct tracked *find_locked(void *p, enum obj_kind kind)
{
    struct tracked *t;
    for (t = table[bucket(p)]; t; t = t->next)
        if (t->ptr == p && t->kind == kind) return t;
    return NULL;
}

static void track(void *p, enum obj_kind kind, ULONG tag, SIZE_T size)
{
    struct tracked *t = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, sizeof(*t));
    t->ptr = p; t->kind = kind; t->tag = tag; t->size = size;
    EnterCriticalSection(&table_cs);
    t->next = table[bucket(p)];
    table[bucket(p)] = t;
    count_alloc[kind]++;
    LeaveCriticalSection(&table_cs);
}

/* Removes p; returns FALSE when it was not tracked. *tag_out/in_flight_out report its state. */
static BOOL untrack(void *p, enum obj_kind kind, ULONG *tag_out, LONG *in_flight_out)
{
    struct tracked **pt, *t;
    BOOL found = FALSE;
    EnterCriticalSection(&table_cs);
    for (pt = &table[bucket(p)]; (t = *pt); pt = &t->next)
    {
        if (t->ptr == p && t->kind == kind)
        {
            *pt = t->next;
            if (tag_out) *tag_out = t->tag;
            if (in_flight_out) *in_flight_out = t->in_flight;
            HeapFree(GetProcessHeap(), 0, t);
            count_free[kind]++;
            found = TRUE;
            break;
        }
    }
    LeaveCriticalSection(&table_cs);
    return found;
}

/* The size of pool block `p` the driver allocated and has not freed (0 if none). */
static SIZE_T tracked_size(void *p)
{
    struct tracked *t;
    SIZE_T size = 0;
    EnterCriticalSection(&table_cs);
    for (t = table[bucket(p)]; t; t = t->next)
        if (t->ptr == p && t->kind == OBJ_POOL) { size = t->size; break; }
    LeaveCriticalSection(&table_cs);
    return size;
}

/* Whether the driver allocated `p` (of that kind) and has not freed it. */
static BOOL is_tracked(void *p, enum obj_kind kind)
{
    BOOL ret;
    EnterCriticalSection(&table_cs);
    ret = find_locked(p, kind) != NULL;
    LeaveCriticalSection(&table_cs);
    return ret;
}

BOOL irp_is_driver_irp(IRP *irp)
{
    return is_tracked(irp, OBJ_IRP);
}

BOOL irp_set_in_flight(IRP *irp, BOOL on, const char *op)
{
    struct tracked *t;
    BOOL ok = TRUE;
    EnterCriticalSection(&table_cs);
    if ((t = find_locked(irp, OBJ_IRP)))
    {
        if (on && t->in_flight) ok = FALSE;
        else { t->in_flight = on; if (on) t->op = op; }
    }
    LeaveCriticalSection(&table_cs);
    return ok;
}

void irp_forget(IRP *irp)
{
    untrack(irp, OBJ_IRP, NULL, NULL);
}

BOOL mdl_is_driver_mdl(MDL *mdl)
{
    return is_tracked(mdl, OBJ_MDL);
}

void mdl_use(MDL *mdl, int delta)
{
    struct tracked *t;
    EnterCriticalSection(&table_cs);
    if ((t = find_locked(mdl, OBJ_MDL))) t->in_flight += delta;
    LeaveCriticalSection(&table_cs);
}

static BOOL inject_fault(const char *what)
{
    LONG n = InterlockedIncrement(&alloc_seq);
    if (settings.fail_allocation && (DWORD)n == settings.fail_allocation)
    {
        plog("FAULT allocation #%ld (%s) failed by injection", n, what);
        return TRUE;
    }
    return FALSE;
}

static void tag_text(ULONG tag, char out[5])
{
    int i;
    for (i = 0; i < 4; i++)
    {
        char c = (char)(tag >> (8 * i));
        out[i] = (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    out[4] = 0;
}

/* ------------------------------------------------------------------ import thunks */

/* ExAllocatePool2: https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-exallocatepool2
 * (absent from Wine 8.0's ntoskrnl; supplied here on top of ExAllocatePoolWithTag). */
static void * WINAPI hook_ExAllocatePool2(ULONGLONG flags, SIZE_T size, ULONG tag)
{
    void *p;
    ULONGLONG types = flags & (PROV_POOL_FLAG_NON_PAGED | PROV_POOL_FLAG_NON_PAGED_EXECUTE | PROV_POOL_FLAG_PAGED);
    if (!types || (types & (types - 1)))
        violation("pool-flags", "ExAllocatePool2 flags %#I64x name no single pool type", flags);
    if (!tag) violation("pool-tag", "ExAllocatePool2 with tag 0");
    if (inject_fault("ExAllocatePool2")) return NULL;
    p = ExAllocatePoolWithTag((types & PROV_POOL_FLAG_PAGED) ? PagedPool : NonPagedPool, size, tag);
    if (!p) return NULL;
    if (!(flags & PROV_POOL_FLAG_UNINITIALIZED)) memset(p, 0, size);
    track(p, OBJ_POOL, tag, size);
    return p;
}

static void * WINAPI hook_ExAllocatePoolWithTag(POOL_TYPE type, SIZE_T size, ULONG tag)
{
    void *p;
    if (inject_fault("ExAllocatePoolWithTag")) return NULL;
    if ((p = ExAllocatePoolWithTag(type, size, tag))) track(p, OBJ_POOL, tag, size);
    return p;
}

static SIZE_T tracked_size(void *p);
static void timers_in_freed_block(void *p, SIZE_T size);

static void WINAPI hook_ExFreePoolWithTag(void *p, ULONG tag)
{
    ULONG had;
    char t1[5], t2[5];
    if (!p) { violation("pool-free", "ExFreePoolWithTag(NULL)"); return; }
    timers_in_freed_block(p, tracked_size(p));
    if (!untrack(p, OBJ_POOL, &had, NULL))
    {
        violation("pool-free", "ExFreePoolWithTag(%p) of memory the driver did not allocate (or freed twice)", p);
        return; /* not freeing it again keeps the process alive to report */
    }
    if (tag && tag != had)
    {
        tag_text(tag, t1); tag_text(had, t2);
        violation("pool-tag", "ExFreePoolWithTag(%p, '%s') of a block allocated with tag '%s'", p, t1, t2);
    }
    ExFreePoolWithTag(p, 0);
}

static void WINAPI hook_ExFreePool(void *p)
{
    hook_ExFreePoolWithTag(p, 0);
}

static IRP * WINAPI hook_IoAllocateIrp(CCHAR stack_size, BOOLEAN charge_quota)
{
    IRP *irp;
    if (stack_size < 1) violation("irp-alloc", "IoAllocateIrp(%d): no stack location for WSK", stack_size);
    if (inject_fault("IoAllocateIrp")) return NULL;
    if ((irp = IoAllocateIrp(stack_size, charge_quota))) track(irp, OBJ_IRP, 0, stack_size);
    return irp;
}

static void completion_ex_drop(IRP *irp);

static void WINAPI hook_IoFreeIrp(IRP *irp)
{
    LONG in_flight = 0;
    if (!irp) { violation("irp-free", "IoFreeIrp(NULL)"); return; }
    if (!untrack(irp, OBJ_IRP, NULL, &in_flight))
    {
        violation("irp-free", "IoFreeIrp(%p): not an IRP the driver owns (freed twice, or freed by "
                  "IoCompleteRequest after a completion routine did not return "
                  "STATUS_MORE_PROCESSING_REQUIRED)", irp);
        return;
    }
    if (in_flight) violation("irp-free", "IoFreeIrp(%p) while WSK still holds it (pending request)", irp);
    completion_ex_drop(irp);
    IoFreeIrp(irp);
}

static MDL * WINAPI hook_IoAllocateMdl(void *va, ULONG length, BOOLEAN secondary, BOOLEAN charge_quota, IRP *irp)
{
    MDL *mdl;
    if (inject_fault("IoAllocateMdl")) return NULL;
    if ((mdl = IoAllocateMdl(va, length, secondary, charge_quota, irp))) track(mdl, OBJ_MDL, 0, length);
    return mdl;
}

static void WINAPI hook_IoFreeMdl(MDL *mdl)
{
    LONG in_flight = 0;
    if (!mdl) { violation("mdl-free", "IoFreeMdl(NULL)"); return; }
    if (!untrack(mdl, OBJ_MDL, NULL, &in_flight))
    {
        violation("mdl-free", "IoFreeMdl(%p): not an MDL the driver owns (or freed twice)", mdl);
        return;
    }
    if (in_flight) violation("mdl-free", "IoFreeMdl(%p) while %ld WSK request(s) using it are pending", mdl, in_flight);
    IoFreeMdl(mdl);
}

/* MmBuildMdlForNonPagedPool: https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-mmbuildmdlfornonpagedpool
 * Wine's does not map the MDL; this one does what the page describes, so that the provider can
 * require a mapped MDL in every WSK_BUF. */
static void WINAPI hook_MmBuildMdlForNonPagedPool(MDL *mdl)
{
    MmBuildMdlForNonPagedPool(mdl);
    mdl->MappedSystemVa = (char *)mdl->StartVa + mdl->ByteOffset;
    mdl->MdlFlags |= MDL_SOURCE_IS_NONPAGED_POOL;
}

static ULONG WINAPIV hook_DbgPrintEx(ULONG component, ULONG level, const char *fmt, ...)
{
    char line[1100];
    int n;
    va_list args;
    n = snprintf(line, 16, "[%6lu] ", GetTickCount() - run_start);
    va_start(args, fmt);
    vsnprintf(line + n, sizeof(line) - n - 2, fmt, args);
    va_end(args);
    n = strlen(line);
    if (!n || line[n - 1] != '\n') strcat(line, "\n");
    log_raw(line);
    return 0;
}

static ULONG WINAPIV hook_DbgPrint(const char *fmt, ...)
{
    char line[1100];
    va_list args;
    va_start(args, fmt);
    vsnprintf(line, sizeof(line) - 2, fmt, args);
    va_end(args);
    if (!*line || line[strlen(line) - 1] != '\n') strcat(line, "\n");
    log_raw(line);
    return 0;
}

static void WINAPI hook_KeBugCheckEx(ULONG code, ULONG_PTR p1, ULONG_PTR p2, ULONG_PTR p3, ULONG_PTR p4)
{
    violation("bugcheck", "KeBugCheckEx(%#lx, %#Ix, %#Ix, %#Ix, %#Ix)", code, p1, p2, p3, p4);
    verifier_finish_run("KeBugCheckEx");
    KeBugCheckEx(code, p1, p2, p3, p4);
}

/* ------------------------------------------------------------------ work items
 *
 * IoSizeofWorkItem, IoInitializeWorkItem, IoUninitializeWorkItem and IoQueueWorkItemEx are not
 * in Wine 8.0's ntoskrnl; supplied here over the process thread pool, with the kernel's rules
 * checked (https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-ioqueueworkitemex,
 * .../nf-wdm-ioinitializeworkitem, .../nf-wdm-iouninitializeworkitem): only an initialised item
 * that is not queued may be queued or uninitialised; the queue is DelayedWorkQueue; the system
 * dequeues the item before its routine runs, so the routine may free or requeue it. While a
 * routine runs the I/O manager holds a reference on the driver object: the Unload wrapper waits
 * for running routines before the image can go. */

#define WORK_ITEM_MAGIC 0x57497465u /* "eTIW" */

/* IO_WORKITEM_ROUTINE_EX (wdm.h; not in Wine 8.0's headers):
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nc-wdm-io_workitem_routine_ex */
typedef void (WINAPI *PIO_WORKITEM_ROUTINE_EX)(void *io_object, void *context, PIO_WORKITEM item);

struct work_item
{
    ULONG magic;
    LONG queued;
    void *io_object;
    PIO_WORKITEM_ROUTINE_EX routine;
    void *context;
};

/* work_items_pending: queued or running routines, counted from IoQueueWorkItemEx on, where the
 * kernel takes its reference on the driver object, until the routine has returned. */
static LONG work_items_live, work_items_pending, work_items_run;
static DWORD callback_tls = TLS_OUT_OF_INDEXES;

const char *callback_current(void)
{
    return callback_tls == TLS_OUT_OF_INDEXES ? NULL : TlsGetValue(callback_tls);
}

const char *callback_enter(const char *what)
{
    const char *previous = callback_current();
    if (callback_tls != TLS_OUT_OF_INDEXES) TlsSetValue(callback_tls, (void *)what);
    return previous;
}

void callback_leave(const char *previous)
{
    if (callback_tls != TLS_OUT_OF_INDEXES) TlsSetValue(callback_tls, (void *)previous);
}

static ULONG WINAPI hook_IoSizeofWorkItem(void)
{
    return sizeof(struct work_item);
}

static void WINAPI hook_IoInitializeWorkItem(void *io_object, PIO_WORKITEM item)
{
    struct work_item *w = (struct work_item *)item;
    if (!io_object) violation("work-item", "IoInitializeWorkItem without a driver or device object");
    if (w->magic == WORK_ITEM_MAGIC)
    {
        violation("work-item", "IoInitializeWorkItem on %p, which is initialised already", item);
        return;
    }
    w->magic = WORK_ITEM_MAGIC;
    w->queued = 0;
    w->io_object = io_object;
    w->routine = NULL;
    w->context = NULL;
    InterlockedIncrement(&work_items_live);
}

static void WINAPI hook_IoUninitializeWorkItem(PIO_WORKITEM item)
{
    struct work_item *w = (struct work_item *)item;
    if (w->magic != WORK_ITEM_MAGIC)
    {
        violation("work-item", "IoUninitializeWorkItem on %p, which is not an initialised work item", item);
        return;
    }
    if (w->queued) violation("work-item", "IoUninitializeWorkItem on queued work item %p", item);
    w->magic = 0;
    InterlockedDecrement(&work_items_live);
}

static DWORD WINAPI work_item_thread(void *arg)
{
    struct work_item *w = arg;
    PIO_WORKITEM_ROUTINE_EX routine = w->routine;
    void *io_object = w->io_object, *context = w->context;
    InterlockedIncrement(&work_items_run);
    InterlockedExchange(&w->queued, 0); /* dequeued before the routine runs */
    routine(io_object, context, (PIO_WORKITEM)w);
    /* the routine may have freed or requeued the item: not touched again */
    InterlockedDecrement(&work_items_pending);
    return 0;
}

static void WINAPI hook_IoQueueWorkItemEx(PIO_WORKITEM item, PIO_WORKITEM_ROUTINE_EX routine,
                                          WORK_QUEUE_TYPE queue, void *context)
{
    struct work_item *w = (struct work_item *)item;
    if (w->magic != WORK_ITEM_MAGIC)
    {
        violation("work-item", "IoQueueWorkItemEx on %p, which is not an initialised work item", item);
        return;
    }
    if (queue != DelayedWorkQueue)
        violation("work-item", "IoQueueWorkItemEx with queue type %d (drivers must use DelayedWorkQueue)", queue);
    if (InterlockedExchange(&w->queued, 1))
    {
        violation("work-item", "IoQueueWorkItemEx on work item %p, which is already queued", item);
        return;
    }
    w->routine = routine;
    w->context = context;
    InterlockedIncrement(&work_items_pending);
    if (!QueueUserWorkItem(work_item_thread, w, WT_EXECUTEDEFAULT))
    {
        /* IoQueueWorkItemEx cannot fail: run the routine on this thread rather than lose it. */
        violation("work-item", "the provider could not queue work item %p (error %lu); running it inline",
                  item, GetLastError());
        work_item_thread(w);
    }
}

/* ------------------------------------------------------------------ IoSetCompletionRoutineEx
 *
 * A stub in Wine 8.0; supplied here as the kernel does it
 * (https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-iosetcompletionroutineex):
 * a small context per call, a reference on the device object, and a wrapper of the provider's
 * own in the stack location that calls the driver's routine and then drops the reference. The
 * wrapper's count stands for the driver reference: DriverUnload's wrapper waits for it like
 * for work items, and contexts of IRPs never completed are reported at the end of the run. */

struct completion_ex
{
    struct completion_ex *next;
    IRP *irp;
    PIO_COMPLETION_ROUTINE routine;
    void *context;
    DEVICE_OBJECT *device;
};

/* Contexts not consumed yet (their IRP not completed), one per IRP at most. */
static struct completion_ex *completions_ex;
static CRITICAL_SECTION completions_ex_cs;
static LONG completions_ex_pending;

/* Unlinks the context of `irp` (or `c` itself if given); NULL if there is none. */
static struct completion_ex *completion_ex_take(IRP *irp, struct completion_ex *c)
{
    struct completion_ex **p, *found = NULL;
    EnterCriticalSection(&completions_ex_cs);
    for (p = &completions_ex; *p; p = &(*p)->next)
        if (c ? *p == c : (*p)->irp == irp) { found = *p; *p = found->next; break; }
    LeaveCriticalSection(&completions_ex_cs);
    return found;
}

static void completion_ex_free(struct completion_ex *c)
{
    ObDereferenceObject(c->device);
    HeapFree(GetProcessHeap(), 0, c);
    InterlockedDecrement(&completions_ex_pending);
}

/* An IRP freed or set up again without having completed (its call was refused): its context
 * goes, as the kernel frees it with the IRP's stack location. */
static void completion_ex_drop(IRP *irp)
{
    struct completion_ex *c = completion_ex_take(irp, NULL);
    if (c) completion_ex_free(c);
}

static NTSTATUS WINAPI completion_ex_wrapper(DEVICE_OBJECT *device, IRP *irp, void *context)
{
    struct completion_ex *c = completion_ex_take(NULL, context);
    NTSTATUS ret;
    if (!c) return STATUS_MORE_PROCESSING_REQUIRED; /* cannot happen: every context is linked */
    ret = c->routine(device, irp, c->context);
    completion_ex_free(c);
    return ret;
}

static NTSTATUS WINAPI hook_IoSetCompletionRoutineEx(DEVICE_OBJECT *device, IRP *irp, PIO_COMPLETION_ROUTINE routine,
                                                     void *context, BOOLEAN on_success, BOOLEAN on_error,
                                                     BOOLEAN on_cancel)
{
    struct completion_ex *c;
    if (!device)
    {
        violation("completion-unload", "IoSetCompletionRoutineEx without a device object");
        return STATUS_INVALID_PARAMETER;
    }
    /* "The IoCompletion routine must belong to the driver that owns the device object" (the
     * page): the reference must keep this driver loaded, not another one. */
    if (driver_object && device->DriverObject != driver_object)
        violation("completion-unload", "IoSetCompletionRoutineEx with device %p of another driver (%p, not %p)",
                  device, device->DriverObject, driver_object);
    if (!(c = HeapAlloc(GetProcessHeap(), 0, sizeof(*c)))) return STATUS_INSUFFICIENT_RESOURCES;
    completion_ex_drop(irp);
    c->irp = irp;
    c->routine = routine;
    c->context = context;
    c->device = device;
    ObfReferenceObject(device);
    InterlockedIncrement(&completions_ex_pending);
    EnterCriticalSection(&completions_ex_cs);
    c->next = completions_ex;
    completions_ex = c;
    LeaveCriticalSection(&completions_ex_cs);
    IoSetCompletionRoutine(irp, completion_ex_wrapper, c, on_success, on_error, on_cancel);
    return STATUS_SUCCESS;
}


/* ------------------------------------------------------------------ timers and DPCs
 *
 * Wine 8.0's KeSetTimer and KeCancelTimer are built on thread-pool timers with other rules than
 * the kernel's: a timer that fired stays "inserted", so KeCancelTimer returns TRUE after its
 * DPC ran (and waits for a running one); KeSetTimer from another thread while the DPC is
 * returning can deadlock; KeFlushQueuedDpcs is a stub. Supplied here with the kernel's rules
 * (https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-kesettimer,
 * .../nf-wdm-kecanceltimer, .../nf-wdm-keinitializedpc, .../nf-wdm-keflushqueueddpcs): one
 * provider thread runs the expired timers' DPC routines; KeSetTimer returns whether the timer
 * was armed; KeCancelTimer returns TRUE only if the timer was armed (its DPC then never runs),
 * and does not wait; KeFlushQueuedDpcs returns once no DPC routine is running. Checked: a timer
 * armed in a pool block the driver frees, a timer still armed when DriverUnload returns, and
 * DriverUnload returning after a DPC routine ran without a KeFlushQueuedDpcs after it (the
 * routine's code may still be running when the image goes). DPC routines run marked as a
 * callback: wskecho makes no WSK call from one. */

struct ktimer_rec
{
    struct ktimer_rec *next;
    KTIMER *timer;
    KDPC *dpc;
    ULONGLONG due;   /* GetTickCount64() time */
    BOOL armed;
};

static struct ktimer_rec *ktimers;
static CRITICAL_SECTION ktimers_cs;
static CONDITION_VARIABLE ktimers_cv;
static HANDLE ktimer_thread;
static LONG dpcs_running, dpcs_since_flush, dpcs_run;

static struct ktimer_rec *ktimer_find(KTIMER *timer)
{
    struct ktimer_rec *r;
    for (r = ktimers; r; r = r->next) if (r->timer == timer) return r;
    return NULL;
}

static DWORD WINAPI ktimer_thread_proc(void *arg)
{
    (void)arg;
    EnterCriticalSection(&ktimers_cs);
    for (;;)
    {
        struct ktimer_rec *r, *next = NULL;
        ULONGLONG now = GetTickCount64();
        for (r = ktimers; r; r = r->next)
            if (r->armed && (!next || r->due < next->due)) next = r;
        if (!next)
        {
            SleepConditionVariableCS(&ktimers_cv, &ktimers_cs, INFINITE);
            continue;
        }
        if (next->due > now)
        {
            SleepConditionVariableCS(&ktimers_cv, &ktimers_cs, (DWORD)(next->due - now));
            continue;
        }
        {
            KDPC *dpc = next->dpc;
            const char *previous;
            next->armed = FALSE; /* expired: no longer in the timer queue */
            InterlockedIncrement(&dpcs_running);
            LeaveCriticalSection(&ktimers_cs);
            previous = callback_enter("a DPC routine");
            dpc->DeferredRoutine(dpc, dpc->DeferredContext, dpc->SystemArgument1, dpc->SystemArgument2);
            callback_leave(previous);
            InterlockedIncrement(&dpcs_run);
            InterlockedIncrement(&dpcs_since_flush);
            InterlockedDecrement(&dpcs_running);
            EnterCriticalSection(&ktimers_cs);
        }
    }
    return 0;
}

static void WINAPI hook_KeInitializeTimer(KTIMER *timer)
{
    struct ktimer_rec *r;
    EnterCriticalSection(&ktimers_cs);
    if (!ktimer_thread) ktimer_thread = CreateThread(NULL, 0, ktimer_thread_proc, NULL, 0, NULL);
    if ((r = ktimer_find(timer)) && r->armed)
        violation("timer", "KeInitializeTimer on timer %p, which is armed", timer);
    if (!r && (r = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, sizeof(*r))))
    {
        r->timer = timer;
        r->next = ktimers;
        ktimers = r;
    }
    if (r) r->armed = FALSE;
    LeaveCriticalSection(&ktimers_cs);
    memset(timer, 0, sizeof(*timer));
}

static void WINAPI hook_KeInitializeDpc(KDPC *dpc, PKDEFERRED_ROUTINE routine, void *context)
{
    memset(dpc, 0, sizeof(*dpc));
    if (!in_driver_image((const void *)routine))
        violation("timer", "KeInitializeDpc with a routine %p outside the driver image", (const void *)routine);
    dpc->DeferredRoutine = routine;
    dpc->DeferredContext = context;
}

static BOOLEAN WINAPI hook_KeSetTimer(KTIMER *timer, LARGE_INTEGER due, KDPC *dpc)
{
    struct ktimer_rec *r;
    BOOLEAN was = FALSE;
    LONGLONG ms = due.QuadPart < 0 ? -due.QuadPart / 10000 : 0;
    if (due.QuadPart >= 0) plog("note: KeSetTimer with an absolute due time: expires at once");
    if (!dpc || !dpc->DeferredRoutine)
        violation("timer", "KeSetTimer on timer %p without an initialised DPC", timer);
    EnterCriticalSection(&ktimers_cs);
    if (!(r = ktimer_find(timer)))
        violation("timer", "KeSetTimer on timer %p, which KeInitializeTimer never initialised", timer);
    else if (dpc && dpc->DeferredRoutine)
    {
        was = r->armed;
        r->armed = TRUE;
        r->dpc = dpc;
        r->due = GetTickCount64() + (ULONGLONG)ms;
        WakeConditionVariable(&ktimers_cv);
    }
    LeaveCriticalSection(&ktimers_cs);
    return was;
}

static BOOLEAN WINAPI hook_KeCancelTimer(KTIMER *timer)
{
    struct ktimer_rec *r;
    BOOLEAN was = FALSE;
    EnterCriticalSection(&ktimers_cs);
    if ((r = ktimer_find(timer)))
    {
        was = r->armed;
        r->armed = FALSE;
    }
    else violation("timer", "KeCancelTimer on timer %p, which KeInitializeTimer never initialised", timer);
    LeaveCriticalSection(&ktimers_cs);
    return was;
}

static void WINAPI hook_KeFlushQueuedDpcs(void)
{
    DWORD t0 = GetTickCount();
    InterlockedExchange(&dpcs_since_flush, 0);
    while (InterlockedCompareExchange(&dpcs_running, 0, 0))
    {
        if (GetTickCount() - t0 > 10000)
        {
            violation("timer", "KeFlushQueuedDpcs: a DPC routine still runs after 10 s");
            return;
        }
        Sleep(1);
    }
    /* a routine that returned since the reset above is flushed too */
    InterlockedExchange(&dpcs_since_flush, 0);
}

/* A pool block of the driver is freed: its timers go with it, and must not be armed. */
static void timers_in_freed_block(void *p, SIZE_T size)
{
    struct ktimer_rec **pr, *r;
    if (!size) return;
    EnterCriticalSection(&ktimers_cs);
    for (pr = &ktimers; (r = *pr); )
    {
        if ((char *)r->timer >= (char *)p && (char *)r->timer < (char *)p + size)
        {
            if (r->armed)
            {
                violation("timer", "pool block %p freed with timer %p in it armed (its DPC would run on freed "
                          "memory)", p, r->timer);
                r->armed = FALSE;
            }
            *pr = r->next;
            HeapFree(GetProcessHeap(), 0, r);
            continue;
        }
        pr = &r->next;
    }
    LeaveCriticalSection(&ktimers_cs);
}

/* DriverUnload returned: no timer may be armed, and every DPC routine must have been flushed. */
static void check_timers_at_unload(void)
{
    struct ktimer_rec *r;
    EnterCriticalSection(&ktimers_cs);
    for (r = ktimers; r; r = r->next)
        if (r->armed) violation("timer", "timer %p still armed when DriverUnload returned", r->timer);
    LeaveCriticalSection(&ktimers_cs);
    if (InterlockedCompareExchange(&dpcs_running, 0, 0))
        violation("timer", "a DPC routine is running when DriverUnload returned");
    else if (InterlockedCompareExchange(&dpcs_since_flush, 0, 0))
        violation("timer", "DriverUnload returned without a KeFlushQueuedDpcs after the last of %ld DPC "
                  "routine(s) ran (its code may still be running when the image goes)", dpcs_since_flush);
    plog("timers: %ld DPC routine(s) run", dpcs_run);
}

/* A new run: forget the previous run's timers (the thread stays). */
static void timers_reset(void)
{
    struct ktimer_rec *r;
    EnterCriticalSection(&ktimers_cs);
    while ((r = ktimers))
    {
        ktimers = r->next;
        HeapFree(GetProcessHeap(), 0, r);
    }
    LeaveCriticalSection(&ktimers_cs);
    dpcs_since_flush = dpcs_run = 0;
}

/* The I/O manager's reference on the driver object from IoQueueWorkItemEx until the routine
 * has returned: Unload may return meanwhile, but the image stays. */
static void wait_for_work_items(void)
{
    DWORD t0 = GetTickCount();
    while (InterlockedCompareExchange(&work_items_pending, 0, 0) ||
           InterlockedCompareExchange(&completions_ex_pending, 0, 0))
    {
        if (GetTickCount() - t0 > 10000)
        {
            violation(work_items_pending ? "work-item" : "completion-unload",
                      "%ld work item routine(s) and %ld IoSetCompletionRoutineEx completion(s) still pending "
                      "10 s after DriverUnload returned", work_items_pending, completions_ex_pending);
            return;
        }
        Sleep(1);
    }
}

static const struct { const char *name; void *hook; } hooks[] =
{
    { "ExAllocatePool2", hook_ExAllocatePool2 },
    { "ExAllocatePoolWithTag", hook_ExAllocatePoolWithTag },
    { "ExFreePoolWithTag", hook_ExFreePoolWithTag },
    { "ExFreePool", hook_ExFreePool },
    { "IoAllocateIrp", hook_IoAllocateIrp },
    { "IoFreeIrp", hook_IoFreeIrp },
    { "IoAllocateMdl", hook_IoAllocateMdl },
    { "IoFreeMdl", hook_IoFreeMdl },
    { "MmBuildMdlForNonPagedPool", hook_MmBuildMdlForNonPagedPool },
    { "DbgPrintEx", hook_DbgPrintEx },
    { "DbgPrint", hook_DbgPrint },
    { "KeBugCheckEx", hook_KeBugCheckEx },
    { "IoSizeofWorkItem", hook_IoSizeofWorkItem },
    { "IoInitializeWorkItem", hook_IoInitializeWorkItem },
    { "IoUninitializeWorkItem", hook_IoUninitializeWorkItem },
    { "IoQueueWorkItemEx", hook_IoQueueWorkItemEx },
    { "IoSetCompletionRoutineEx", hook_IoSetCompletionRoutineEx },
    { "KeInitializeTimer", hook_KeInitializeTimer },
    { "KeInitializeDpc", hook_KeInitializeDpc },
    { "KeSetTimer", hook_KeSetTimer },
    { "KeCancelTimer", hook_KeCancelTimer },
    { "KeFlushQueuedDpcs", hook_KeFlushQueuedDpcs },
};

static IMAGE_IMPORT_DESCRIPTOR *imports(void *base, ULONG *size)
{
    IMAGE_NT_HEADERS *nt = RtlImageNtHeader(base);
    IMAGE_DATA_DIRECTORY *dir;
    if (!nt) return NULL;
    dir = &nt->OptionalHeader.DataDirectory[IMAGE_DIRECTORY_ENTRY_IMPORT];
    if (!dir->VirtualAddress || !dir->Size) return NULL;
    *size = dir->Size;
    return (IMAGE_IMPORT_DESCRIPTOR *)((char *)base + dir->VirtualAddress);
}

static BOOL imports_netio(void *base)
{
    ULONG size;
    IMAGE_IMPORT_DESCRIPTOR *d = imports(base, &size);
    if (!d || base == (void *)self_module) return FALSE;
    for (; d->Name; d++)
        if (!_stricmp((char *)base + d->Name, "netio.sys")) return TRUE;
    return FALSE;
}

static void patch_imports(void *base)
{
    ULONG size, i, patched = 0;
    IMAGE_IMPORT_DESCRIPTOR *d = imports(base, &size);
    for (; d && d->Name; d++)
    {
        IMAGE_THUNK_DATA *names, *iat;
        if (_stricmp((char *)base + d->Name, "ntoskrnl.exe")) continue;
        names = (IMAGE_THUNK_DATA *)((char *)base + (d->OriginalFirstThunk ? d->OriginalFirstThunk : d->FirstThunk));
        iat = (IMAGE_THUNK_DATA *)((char *)base + d->FirstThunk);
        for (; names->u1.AddressOfData; names++, iat++)
        {
            IMAGE_IMPORT_BY_NAME *ibn;
            if (IMAGE_SNAP_BY_ORDINAL(names->u1.Ordinal)) continue;
            ibn = (IMAGE_IMPORT_BY_NAME *)((char *)base + names->u1.AddressOfData);
            for (i = 0; i < ARRAY_SIZE(hooks); i++)
            {
                DWORD old;
                if (strcmp((char *)ibn->Name, hooks[i].name)) continue;
                VirtualProtect(&iat->u1.Function, sizeof(iat->u1.Function), PAGE_READWRITE, &old);
                iat->u1.Function = (ULONG_PTR)hooks[i].hook;
                VirtualProtect(&iat->u1.Function, sizeof(iat->u1.Function), old, &old);
                patched++;
            }
        }
    }
    plog("import thunks installed in the driver at %p (%lu entries)", base, patched);
}

/* ------------------------------------------------------------------ DriverEntry / Unload wrappers */

/* Wine's ntoskrnl computes DriverInit from the image header's AddressOfEntryPoint after the
 * image is loaded (after the load notification below), so pointing that RVA at a jump stub
 * next to the image puts hook_DriverEntry between the I/O manager and DriverEntry. It logs the
 * status DriverEntry returns and wraps DriverUnload, to check when Unload returns. */
typedef NTSTATUS (WINAPI *entry_fn)(DRIVER_OBJECT *, UNICODE_STRING *);
static entry_fn original_entry;
static PDRIVER_UNLOAD original_unload;

static void WINAPI hook_Unload(DRIVER_OBJECT *driver)
{
    DWORD t0 = GetTickCount();
    plog("DriverUnload called");
    original_unload(driver);
    plog("DriverUnload returned after %lu ms", GetTickCount() - t0);
    check_timers_at_unload();
    wait_for_work_items();
    provider_unload_returned();
}

static NTSTATUS WINAPI hook_DriverEntry(DRIVER_OBJECT *driver, UNICODE_STRING *path)
{
    NTSTATUS status;
    plog("DriverEntry called");
    driver_object = driver;
    status = original_entry(driver, path);
    plog("DriverEntry returned %#lx", status);
    if (!status && driver->DriverUnload)
    {
        original_unload = driver->DriverUnload;
        driver->DriverUnload = hook_Unload;
    }
    else if (!status)
        plog("note: DriverEntry succeeded without setting DriverUnload");
    provider_entry_returned(status);
    return status;
}

static void hook_entry_point(void *base)
{
    IMAGE_NT_HEADERS *nt = RtlImageNtHeader(base);
    ULONG_PTR start = ((ULONG_PTR)base + nt->OptionalHeader.SizeOfImage + 0xffff) & ~(ULONG_PTR)0xffff, a;
    unsigned char *stub = NULL;
    DWORD old;

    if (!nt->OptionalHeader.AddressOfEntryPoint) return;
    for (a = start; a < start + 0x40000000 && !stub; a += 0x10000)
        stub = VirtualAlloc((void *)a, 0x1000, MEM_RESERVE | MEM_COMMIT, PAGE_EXECUTE_READWRITE);
    if (!stub || (ULONG_PTR)stub - (ULONG_PTR)base > 0xffffffffUL)
    {
        plog("note: no room for a DriverEntry stub near the image; DriverEntry/Unload are not wrapped");
        return;
    }
    original_entry = (entry_fn)((char *)base + nt->OptionalHeader.AddressOfEntryPoint);
    stub[0] = 0x48; stub[1] = 0xb8;                       /* mov rax, imm64 */
    *(void **)(stub + 2) = (void *)hook_DriverEntry;
    stub[10] = 0xff; stub[11] = 0xe0;                     /* jmp rax */
    VirtualProtect(&nt->OptionalHeader.AddressOfEntryPoint, sizeof(DWORD), PAGE_READWRITE, &old);
    nt->OptionalHeader.AddressOfEntryPoint = (DWORD)((ULONG_PTR)stub - (ULONG_PTR)base);
    VirtualProtect(&nt->OptionalHeader.AddressOfEntryPoint, sizeof(DWORD), old, &old);
}

/* ------------------------------------------------------------------ run lifecycle */

void verifier_start_run(void)
{
    int i;
    run_start = GetTickCount();
    violations = 0;
    alloc_seq = 0;
    for (i = 0; i < 3; i++) count_alloc[i] = count_free[i] = 0;
    read_settings();
    timers_reset();
    provider_reset();
}

void verifier_finish_run(const char *why)
{
    struct tracked *t;
    unsigned i;
    struct { ULONG tag; LONG n; SIZE_T bytes; } tags[64];
    int ntags = 0, k, leaked_irps = 0, leaked_mdls = 0;

    if (!run_active) return;
    run_active = FALSE;
    plog("run ends: %s", why);
    provider_finish();

    EnterCriticalSection(&table_cs);
    for (i = 0; i < BUCKETS; i++)
    {
        while ((t = table[i]))
        {
            table[i] = t->next;
            if (t->kind == OBJ_POOL)
            {
                for (k = 0; k < ntags && tags[k].tag != t->tag; k++) ;
                if (k == ntags && ntags < 64) { tags[k].tag = t->tag; tags[k].n = 0; tags[k].bytes = 0; ntags++; }
                if (k < ntags) { tags[k].n++; tags[k].bytes += t->size; }
            }
            else if (t->kind == OBJ_IRP) leaked_irps++;
            else leaked_mdls++;
            HeapFree(GetProcessHeap(), 0, t);
        }
    }
    LeaveCriticalSection(&table_cs);
    for (k = 0; k < ntags; k++)
    {
        char name[5];
        tag_text(tags[k].tag, name);
        InterlockedIncrement(&violations);
        plog("LEAK pool tag %s %Iu bytes (%ld block(s))", name, tags[k].bytes, tags[k].n);
    }
    if (leaked_irps) { InterlockedIncrement(&violations); plog("LEAK %d IRP(s)", leaked_irps); }
    if (leaked_mdls) { InterlockedIncrement(&violations); plog("LEAK %d MDL(s)", leaked_mdls); }
    if (work_items_live)
    {
        InterlockedIncrement(&violations);
        plog("LEAK %ld work item(s) never uninitialised", work_items_live);
    }
    if (completions_ex_pending)
    {
        InterlockedIncrement(&violations);
        plog("LEAK %ld IoSetCompletionRoutineEx context(s): their IRPs never completed", completions_ex_pending);
    }
    plog("work items: %ld routine(s) run", work_items_run);
    /* a new run starts clean: contexts left by this run's driver are forgotten (not freed:
     * their device objects may be gone) */
    EnterCriticalSection(&completions_ex_cs);
    completions_ex = NULL;
    LeaveCriticalSection(&completions_ex_cs);
    completions_ex_pending = 0;
    work_items_pending = 0;
    plog("counters: pool %ld allocated %ld freed, IRPs %ld allocated %ld freed, MDLs %ld allocated %ld freed, "
         "allocations seen %ld",
         count_alloc[OBJ_POOL], count_free[OBJ_POOL], count_alloc[OBJ_IRP], count_free[OBJ_IRP],
         count_alloc[OBJ_MDL], count_free[OBJ_MDL], alloc_seq);
    if (violations) plog("verdict %ld violations", violations);
    else plog("verdict ok");
    EnterCriticalSection(&log_cs);
    if (log_file != INVALID_HANDLE_VALUE) CloseHandle(log_file);
    log_file = INVALID_HANDLE_VALUE;
    LeaveCriticalSection(&log_cs);
    driver_base = NULL;
}

static void CALLBACK dll_notification(ULONG reason, LDR_DLL_NOTIFICATION_DATA *data, void *context)
{
    void *base = data->Loaded.DllBase;
    if (reason == LDR_DLL_NOTIFICATION_REASON_LOADED && imports_netio(base))
    {
        if (run_active) verifier_finish_run("a second driver loaded");
        verifier_start_run();
        run_active = TRUE;
        driver_base = base;
        plog("driver %ls loaded at %p", data->Loaded.BaseDllName->Buffer, base);
        patch_imports(base);
        hook_entry_point(base);
    }
    else if (reason == LDR_DLL_NOTIFICATION_REASON_UNLOADED && base == driver_base && run_active)
    {
        verifier_finish_run("driver image unloaded");
    }
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, void *reserved)
{
    if (reason == DLL_PROCESS_ATTACH)
    {
        HMODULE pinned;
        self_module = instance;
        InitializeCriticalSection(&log_cs);
        InitializeCriticalSection(&table_cs);
        InitializeCriticalSection(&completions_ex_cs);
        InitializeCriticalSection(&ktimers_cs);
        InitializeConditionVariable(&ktimers_cv);
        callback_tls = TlsAlloc();
        /* Never unloaded: worker threads may still be leaving provider code when the driver is
         * unloaded, and the verdict is written from the driver's unload notification. */
        GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_PIN,
                           (const WCHAR *)DllMain, &pinned);
        LdrRegisterDllNotification(0, dll_notification, NULL, &notify_cookie);
        /* The importing driver's own load notification comes after this DllMain (Wine attaches
         * dependencies first), with its import address table already bound. */
    }
    else if (reason == DLL_PROCESS_DETACH)
    {
        if (run_active) verifier_finish_run("process exit with the driver still loaded");
    }
    return TRUE;
}
