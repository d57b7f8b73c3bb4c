/*
 * The test NMR (client side) and WSK provider, over ws2_32 inside winedevice.exe.
 *
 * Objects: one registration (the driver's NmrRegisterClient), bindings (one per attach; the NMR
 * binding handle is the binding, the WSK_CLIENT is a separate object inside it), and sockets
 * (WSK_SOCKET first, so the PWSK_SOCKET handed out is the object). Socket memory is never freed
 * during a run, so a call on a closed socket is detected instead of crashing.
 *
 * I/O: every socket is non-blocking. A connection has two lanes, each a worker thread with a
 * queue: receive, and send + disconnect (ordered). Workers poll with select() in 50 ms steps so
 * that a close is noticed. WskCloseSocket hands the socket to a closer thread that waits for the
 * lanes (and, for a listener, the accept thread) to finish, completing pending IRPs with
 * STATUS_CANCELLED, then closes the Winsock socket and completes the close IRP.
 *
 * IRPs are completed through Wine's IofCompleteRequest: submit_irp() does what IoCallDriver does
 * (IoSetNextIrpStackLocation) and replaces the completion routine the driver put there by
 * irp_trampoline, which calls the driver's routine with the driver's context, records its return
 * value, and returns it to IofCompleteRequest. A routine returning anything but
 * STATUS_MORE_PROCESSING_REQUIRED is a violation (Wine then frees the IRP, so the provider also
 * forgets it: a later IoFreeIrp of it is reported, not executed).
 */
#include "provider.h"

#define MAGIC_REG     0x52474d4e /* NMGR */
#define MAGIC_BIND    0x444e4942 /* BIND */
#define MAGIC_CLIENT  0x544e4c43 /* CLNT */
#define MAGIC_SOCK    0x4b434f53 /* SOCK */
#define MAGIC_DEAD    0x44414544 /* DEAD */

enum bstate { B_ATTACHING, B_ATTACHED, B_DETACHING, B_DETACHED, B_CLEANED, B_FAILED };

struct binding;

struct wsk_client
{
    ULONG magic;
    struct binding *binding;
};

struct registration
{
    ULONG magic;
    NPI_CLIENT_CHARACTERISTICS chars;   /* copy, for the checks; calls go through the original */
    const NPI_CLIENT_CHARACTERISTICS *orig;
    void *context;
    CRITICAL_SECTION op_cs;             /* serialises attach / detach of bindings */
    LONG deregistering;
    LONG deregister_complete;
    LONG wait_called;
    HANDLE deregistered_event;
    struct binding *current;            /* the attached binding, if any */
    HANDLE late_thread;
};

struct binding
{
    ULONG magic;
    int id;
    struct registration *reg;
    struct wsk_client client;
    LONG state;
    LONG attach_calls;                  /* NmrClientAttachProvider calls */
    void *client_binding_context;
    const WSK_CLIENT_DISPATCH *client_dispatch;
    ULONG event_mask;
    LONG sockets_created;
    LONG open_sockets;
    LONG calls_in_progress;
    LONG detach_called, detach_returned, detach_returned_pending, complete_calls;
    LONG detach_done;                   /* the client reported its detach complete */
    HANDLE changed;                     /* signalled on detach completion and socket closes */
};

struct req
{
    struct req *next;
    IRP *irp;
    int op;                             /* OP_RECEIVE, OP_SEND, OP_DISCONNECT */
    MDL *mdl;
    char *data;
    SIZE_T length, done;
    ULONG flags;
};

enum { OP_RECEIVE, OP_SEND, OP_DISCONNECT };

struct lane
{
    struct req *head, *tail;
    HANDLE thread;
    HANDLE wake;
};

#define MAX_EXEC 8
struct sock
{
    WSK_SOCKET wsk;                     /* first: PWSK_SOCKET is the object */
    ULONG magic;
    int id;
    BOOL listener;
    struct binding *binding;
    SOCKET s;
    int family;
    void *context;
    const void *client_dispatch;
    CRITICAL_SECTION cs;
    LONG closing;
    LONG close_calls;
    LONG bound;
    BOOL ipv6_only;      /* IPV6_V6ONLY set by the driver */
    BOOL no_delay;       /* TCP_NODELAY set by the driver */
    LONG receives;       /* WskReceive calls made on it */
    BOOL sent_fin, got_fin, abortive;
    struct { DWORD tid; int depth; const char *op; } exec[MAX_EXEC];
    struct lane rx, tx;
    HANDLE accept_thread;
    /* The out-parameter *AcceptSocketContext of this socket's WskAcceptEvent: it holds
       ACCEPT_OUT_UNWRITTEN until the client writes it, and is checked while accept_pending.
       In the socket, not on the accept thread's stack: sockets are never freed (only marked
       dead), so another thread may read it at any time. */
    void * volatile accept_ctx;
    volatile LONG accept_pending;
    SOCKADDR_STORAGE local;
    struct sock *all_next;
};

static struct registration *the_reg;
static NTSTATUS entry_status = STATUS_PENDING;
static BOOL unload_returned;
static CRITICAL_SECTION sock_list_cs;
static struct sock *all_socks;
static LONG next_sock_id, next_binding_id, bind_calls, accepted_connections;
static LONG stat_no_delay;
static LONG stat_inline, stat_pending, stat_short;
static BOOL wsa_started;
static struct binding *all_bindings[64];
static int nbindings;

static const WSK_PROVIDER_CHARACTERISTICS provider_characteristics =
    { MAKE_WSK_VERSION(1, 0), MAKE_WSK_VERSION(1, 0) };
/* The provider's module id (an arbitrary GUID of this test provider). */
static const NPI_MODULEID provider_module_id =
    { sizeof(NPI_MODULEID), MIT_GUID, { { 0x6e7a3c41, 0x2b15, 0x4f0e, { 0x9d, 0x61, 0x3a, 0x55, 0x0c, 0x7e, 0x41, 0x02 } } } };
static const NPI_REGISTRATION_INSTANCE provider_registration =
    { 0, sizeof(NPI_REGISTRATION_INSTANCE), &PROV_NPI_WSK_INTERFACE_ID, &provider_module_id, 0,
      &provider_characteristics };

static const WSK_PROVIDER_DISPATCH provider_dispatch;
static const WSK_PROVIDER_LISTEN_DISPATCH listen_dispatch;
static const WSK_PROVIDER_CONNECTION_DISPATCH connection_dispatch;

static void attach(struct registration *reg);
static void detach(struct binding *b, const char *why);

/* ------------------------------------------------------------------ helpers */

static HANDLE start_thread(LPTHREAD_START_ROUTINE fn, void *arg)
{
    return CreateThread(NULL, 0, fn, arg, 0, NULL);
}

static const char *addr_text(const SOCKADDR *sa, char *out, size_t size)
{
    char host[64] = "?";
    if (!sa) return "(null)";
    if (sa->sa_family == AF_INET)
    {
        const SOCKADDR_IN *in = (const SOCKADDR_IN *)sa;
        inet_ntop(AF_INET, (void *)&in->sin_addr, host, sizeof(host));
        snprintf(out, size, "%s:%u", host, ntohs(in->sin_port));
    }
    else if (sa->sa_family == AF_INET6)
    {
        const SOCKADDR_IN6 *in6 = (const SOCKADDR_IN6 *)sa;
        inet_ntop(AF_INET6, (void *)&in6->sin6_addr, host, sizeof(host));
        snprintf(out, size, "[%s]:%u", host, ntohs(in6->sin6_port));
    }
    else snprintf(out, size, "(family %u)", sa->sa_family);
    return out;
}

static NTSTATUS wsa_status(int err)
{
    switch (err)
    {
    case WSAECONNRESET: return STATUS_CONNECTION_RESET;
    case WSAECONNABORTED: return STATUS_CONNECTION_ABORTED;
    case WSAESHUTDOWN: return STATUS_INVALID_DEVICE_STATE;
    case WSAEADDRINUSE: return STATUS_ADDRESS_ALREADY_EXISTS;
    case WSAEADDRNOTAVAIL: return STATUS_INVALID_ADDRESS_COMPONENT;
    case WSAENETDOWN: return STATUS_NETWORK_UNREACHABLE;
    case WSAENOBUFS: return STATUS_INSUFFICIENT_RESOURCES;
    default: return STATUS_UNSUCCESSFUL;
    }
}

/* ------------------------------------------------------------------ IRPs */

struct trampoline_ctx
{
    PIO_COMPLETION_ROUTINE routine;
    void *context;
    const char *op;
    int sock_id;
};

static NTSTATUS WINAPI irp_trampoline(DEVICE_OBJECT *device, IRP *irp, void *context)
{
    struct trampoline_ctx *t = context;
    PIO_COMPLETION_ROUTINE routine = t->routine;
    void *driver_context = t->context;
    const char *op = t->op;
    int id = t->sock_id;
    NTSTATUS ret;

    const char *previous;

    HeapFree(GetProcessHeap(), 0, t);
    irp_set_in_flight(irp, FALSE, NULL);
    previous = callback_enter("an IoCompletion routine");
    ret = routine(device, irp, driver_context);
    callback_leave(previous);
    if (ret != STATUS_MORE_PROCESSING_REQUIRED)
    {
        violation("completion-routine", "the completion routine of %s (socket #%d) returned %#lx, not "
                  "STATUS_MORE_PROCESSING_REQUIRED: IoCompleteRequest frees the driver's IRP %p", op, id,
                  ret, irp);
        irp_forget(irp);
    }
    return ret;
}

/* Checks a driver IRP handed to a WSK call and takes it (as IoCallDriver would). Returns
 * STATUS_SUCCESS when it can be completed later, an error when it cannot be used at all. */
NTSTATUS submit_irp(IRP *irp, const char *op, int sock_id)
{
    IO_STACK_LOCATION *next;
    struct trampoline_ctx *t;
    const UCHAR all = SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL;

    if (!irp)
    {
        violation("irp", "%s (socket #%d) without an IRP", op, sock_id);
        return STATUS_INVALID_PARAMETER;
    }
    if (!irp_is_driver_irp(irp))
    {
        violation("irp", "%s (socket #%d): IRP %p was not allocated by the driver with IoAllocateIrp (or was freed)",
                  op, sock_id, irp);
        return STATUS_INVALID_PARAMETER;
    }
    if (!irp_set_in_flight(irp, TRUE, op))
    {
        violation("irp", "%s (socket #%d): IRP %p is already pending in another WSK call", op, sock_id, irp);
        return STATUS_INVALID_PARAMETER;
    }
    if (irp->CurrentLocation <= 1)
    {
        violation("irp", "%s (socket #%d): IRP %p has no next stack location (CurrentLocation %d, StackCount %d)",
                  op, sock_id, irp, irp->CurrentLocation, irp->StackCount);
        irp_set_in_flight(irp, FALSE, NULL);
        return STATUS_INVALID_PARAMETER;
    }
    next = IoGetNextIrpStackLocation(irp);
    if (!next->CompletionRoutine)
    {
        violation("irp", "%s (socket #%d): IRP %p has no completion routine in its next stack location",
                  op, sock_id, irp);
        irp_set_in_flight(irp, FALSE, NULL);
        return STATUS_INVALID_PARAMETER;
    }
    if ((next->Control & all) != all)
        violation("irp", "%s (socket #%d): IRP %p completion routine not invoked on success, error and cancel "
                  "(Control %#x)", op, sock_id, irp, next->Control);
    /* IoSetCompletionRoutineEx puts the kernel's wrapper in the stack location, which holds a
     * reference on the driver's device across the routine; a routine of the driver's own image
     * there was set with IoSetCompletionRoutine, and could still be returning when the driver
     * unloads (https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-iosetcompletionroutine). */
    if (in_driver_image((const void *)next->CompletionRoutine))
        violation("completion-unload", "%s (socket #%d): IRP %p completion routine set without "
                  "IoSetCompletionRoutineEx: it may still be returning when the driver unloads", op, sock_id, irp);
    t = HeapAlloc(GetProcessHeap(), 0, sizeof(*t));
    t->routine = next->CompletionRoutine;
    t->context = next->Context;
    t->op = op;
    t->sock_id = sock_id;
    next->CompletionRoutine = irp_trampoline;
    next->Context = t;
    /* IoSetNextIrpStackLocation, as IoCallDriver does: the driver's location becomes current */
    irp->CurrentLocation--;
    irp->Tail.Overlay.CurrentStackLocation--;
    return STATUS_SUCCESS;
}

void complete_irp(IRP *irp, NTSTATUS status, ULONG_PTR information)
{
    irp->IoStatus.Status = status;
    irp->IoStatus.Information = information;
    IoCompleteRequest(irp, IO_NO_INCREMENT);
}

/* Used when a call is refused before its IRP could be taken: Wine's IofCompleteRequest would
 * free an IRP whose routine cannot run, so nothing is completed (the violation is logged). */

/* ------------------------------------------------------------------ per-socket call tracking */

/* What the provider puts in *AcceptSocketContext before WskAcceptEvent: a client that starts
   I/O on the accepted socket before writing it, or accepts without writing it, is caught. */
#define ACCEPT_OUT_UNWRITTEN ((void *)(ULONG_PTR)0xacce9700)

static struct sock *sock_from(WSK_SOCKET *ws, const char *op)
{
    struct sock *s = (struct sock *)ws;
    if (!s) { violation("socket", "%s on a NULL socket", op); return NULL; }
    if (s->magic == MAGIC_SOCK && s->accept_pending && s->accept_ctx == ACCEPT_OUT_UNWRITTEN)
        violation("accept-event", "%s on accepted socket #%d before its WskAcceptEvent wrote "
                  "*AcceptSocketContext", op, s->id);
    if (s->magic == MAGIC_DEAD && !strcmp(op, "WskCloseSocket"))
    {
        violation("close", "WskCloseSocket called twice on socket #%d (the first close had completed)", s->id);
        return NULL;
    }
    if (s->magic == MAGIC_DEAD)
    {
        violation("socket", "%s on socket #%d after its WskCloseSocket completed", op, s->id);
        return NULL;
    }
    if (s->magic != MAGIC_SOCK)
    {
        violation("socket", "%s on %p, not a socket of this provider", op, ws);
        return NULL;
    }
    return s;
}

/* Every WSK call passes here: none may be made inside a completion routine
 * (https://learn.microsoft.com/windows-hardware/drivers/network/using-irps-with-winsock-kernel-functions)
 * or an event callback (WskCloseSocket waits for those:
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_close_socket). */
static BOOL binding_usable(struct binding *b, const char *op, int sock_id)
{
    const char *inside = callback_current();
    if (inside)
        violation("wsk-context", "%s (socket #%d) called inside %s", op, sock_id, inside);
    if (b->detach_done)
    {
        violation("after-detach", "%s (socket #%d) after the client's detach of binding %d completed", op, sock_id, b->id);
        return FALSE;
    }
    if (b->state == B_CLEANED)
    {
        violation("after-detach", "%s (socket #%d) after binding %d was cleaned up", op, sock_id, b->id);
        return FALSE;
    }
    return TRUE;
}

static void enter_call(struct sock *s, const char *op)
{
    DWORD tid = GetCurrentThreadId();
    int i, free_slot = -1;
    InterlockedIncrement(&s->binding->calls_in_progress);
    EnterCriticalSection(&s->cs);
    for (i = 0; i < MAX_EXEC; i++)
    {
        if (s->exec[i].depth && s->exec[i].tid == tid) { s->exec[i].depth++; free_slot = -2; break; }
        if (!s->exec[i].depth && free_slot == -1) free_slot = i;
    }
    if (free_slot >= 0) { s->exec[free_slot].tid = tid; s->exec[free_slot].depth = 1; s->exec[free_slot].op = op; }
    LeaveCriticalSection(&s->cs);
}

static void leave_call(struct sock *s)
{
    DWORD tid = GetCurrentThreadId();
    int i;
    EnterCriticalSection(&s->cs);
    for (i = 0; i < MAX_EXEC; i++)
        if (s->exec[i].depth && s->exec[i].tid == tid) { s->exec[i].depth--; break; }
    LeaveCriticalSection(&s->cs);
    InterlockedDecrement(&s->binding->calls_in_progress);
}

static BOOL check_open(struct sock *s, const char *op)
{
    if (s->close_calls)
    {
        violation("after-close", "%s on socket #%d after WskCloseSocket was called", op, s->id);
        return FALSE;
    }
    return binding_usable(s->binding, op, s->id);
}

static struct sock *new_sock(struct binding *b, BOOL listener, SOCKET so, int family)
{
    struct sock *s = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, sizeof(*s));
    s->wsk.Dispatch = listener ? (const void *)&listen_dispatch : (const void *)&connection_dispatch;
    s->magic = MAGIC_SOCK;
    s->id = InterlockedIncrement(&next_sock_id);
    s->listener = listener;
    s->binding = b;
    s->s = so;
    s->family = family;
    InitializeCriticalSection(&s->cs);
    s->rx.wake = CreateEventW(NULL, FALSE, FALSE, NULL);
    s->tx.wake = CreateEventW(NULL, FALSE, FALSE, NULL);
    EnterCriticalSection(&sock_list_cs);
    s->all_next = all_socks;
    all_socks = s;
    LeaveCriticalSection(&sock_list_cs);
    InterlockedIncrement(&b->open_sockets);
    InterlockedIncrement(&b->sockets_created);
    return s;
}

static void sock_gone(struct sock *s)
{
    struct binding *b = s->binding;
    s->magic = MAGIC_DEAD;
    InterlockedDecrement(&b->open_sockets);
    SetEvent(b->changed);
}

/* ------------------------------------------------------------------ lanes (connection I/O) */

static BOOL wait_socket(struct sock *s, BOOL write)
{
    fd_set set;
    struct timeval tv = { 0, 50000 };
    FD_ZERO(&set);
    FD_SET(s->s, &set);
    return select(0, write ? NULL : &set, write ? &set : NULL, NULL, &tv) > 0;
}

/* Tries a request once without waiting; TRUE when it finished with *status / *info. */
static BOOL try_request(struct sock *s, struct req *r, NTSTATUS *status, ULONG_PTR *info)
{
    int n, err;
    if (r->op == OP_RECEIVE)
    {
        SIZE_T want = r->length;
        if (settings.short_receive && want > settings.short_receive)
        {
            want = settings.short_receive;
            InterlockedIncrement(&stat_short);
        }
        if (want > 0x40000000) want = 0x40000000;
        n = recv(s->s, r->data, (int)want, 0);
        if (n >= 0)
        {
            if (!n) s->got_fin = TRUE;
            *status = STATUS_SUCCESS; *info = n;
            return TRUE;
        }
        if ((err = WSAGetLastError()) == WSAEWOULDBLOCK) return FALSE;
        *status = wsa_status(err); *info = 0;
        return TRUE;
    }
    if (r->op == OP_SEND)
    {
        while (r->done < r->length)
        {
            SIZE_T chunk = r->length - r->done;
            if (chunk > 0x100000) chunk = 0x100000;
            n = send(s->s, r->data + r->done, (int)chunk, 0);
            if (n > 0) { r->done += n; continue; }
            if ((err = WSAGetLastError()) == WSAEWOULDBLOCK) return FALSE;
            *status = wsa_status(err); *info = 0;
            return TRUE;
        }
        *status = STATUS_SUCCESS; *info = r->done;
        return TRUE;
    }
    /* OP_DISCONNECT */
    if (r->flags & PROV_WSK_FLAG_ABORTIVE)
    {
        s->abortive = TRUE;
        shutdown(s->s, SD_BOTH);
    }
    else
    {
        shutdown(s->s, SD_SEND);
        s->sent_fin = TRUE;
    }
    *status = STATUS_SUCCESS; *info = 0;
    return TRUE;
}

static void finish_request(struct sock *s, struct req *r, NTSTATUS status, ULONG_PTR info)
{
    if (r->mdl) mdl_use(r->mdl, -1);
    complete_irp(r->irp, status, info);
    HeapFree(GetProcessHeap(), 0, r);
}

struct lane_arg { struct sock *s; struct lane *lane; };

static DWORD WINAPI lane_thread(void *arg)
{
    struct lane_arg *a = arg;
    struct sock *s = a->s;
    struct lane *lane = a->lane;
    HeapFree(GetProcessHeap(), 0, a);
    for (;;)
    {
        struct req *r;
        NTSTATUS status;
        ULONG_PTR info;

        EnterCriticalSection(&s->cs);
        r = lane->head;
        if (!r && s->closing) { LeaveCriticalSection(&s->cs); return 0; }
        LeaveCriticalSection(&s->cs);
        if (!r) { WaitForSingleObject(lane->wake, 50); continue; }

        for (;;)
        {
            if (s->closing) { status = STATUS_CANCELLED; info = 0; break; }
            if (try_request(s, r, &status, &info)) break;
            wait_socket(s, r->op != OP_RECEIVE);
        }
        EnterCriticalSection(&s->cs);
        lane->head = r->next;
        if (!lane->head) lane->tail = NULL;
        LeaveCriticalSection(&s->cs);
        finish_request(s, r, status, info);
    }
}

static void queue_request(struct sock *s, struct lane *lane, struct req *r)
{
    EnterCriticalSection(&s->cs);
    if (lane->tail) lane->tail->next = r; else lane->head = r;
    lane->tail = r;
    if (!lane->thread)
    {
        struct lane_arg *a = HeapAlloc(GetProcessHeap(), 0, sizeof(*a));
        a->s = s; a->lane = lane;
        lane->thread = start_thread(lane_thread, a);
    }
    LeaveCriticalSection(&s->cs);
    SetEvent(lane->wake);
}

/* A receive, send or disconnect: inline when allowed and possible, otherwise queued. */
static NTSTATUS start_request(struct sock *s, struct lane *lane, struct req *r)
{
    NTSTATUS status;
    ULONG_PTR info;
    BOOL idle;

    if (r->mdl) mdl_use(r->mdl, 1);
    EnterCriticalSection(&s->cs);
    idle = !lane->head;
    LeaveCriticalSection(&s->cs);
    if (settings.inline_completion && idle && try_request(s, r, &status, &info))
    {
        InterlockedIncrement(&stat_inline);
        finish_request(s, r, status, info);
        return status;
    }
    InterlockedIncrement(&stat_pending);
    IoMarkIrpPending(r->irp);
    queue_request(s, lane, r);
    return STATUS_PENDING;
}

/* ------------------------------------------------------------------ deferred one-shot work */

struct work { IRP *irp; NTSTATUS status; ULONG_PTR info; };

static DWORD WINAPI complete_later_thread(void *arg)
{
    struct work *w = arg;
    complete_irp(w->irp, w->status, w->info);
    HeapFree(GetProcessHeap(), 0, w);
    return 0;
}

/* Completes a taken IRP: inline (returning the status) or from a thread (STATUS_PENDING). */
static NTSTATUS finish_call(IRP *irp, NTSTATUS status, ULONG_PTR info)
{
    struct work *w;
    HANDLE h;
    if (settings.inline_completion)
    {
        InterlockedIncrement(&stat_inline);
        complete_irp(irp, status, info);
        return status;
    }
    InterlockedIncrement(&stat_pending);
    IoMarkIrpPending(irp);
    w = HeapAlloc(GetProcessHeap(), 0, sizeof(*w));
    w->irp = irp; w->status = status; w->info = info;
    h = start_thread(complete_later_thread, w);
    CloseHandle(h);
    return STATUS_PENDING;
}

/* ------------------------------------------------------------------ WSK_BUF checks */

static BOOL check_buf(struct sock *s, const WSK_BUF *buf, const char *op, char **data)
{
    MDL *m;
    SIZE_T total = 0;
    if (!buf) { violation("wsk-buf", "%s (socket #%d) with a NULL WSK_BUF", op, s->id); return FALSE; }
    if (!buf->Mdl) { violation("wsk-buf", "%s (socket #%d): WSK_BUF without an MDL", op, s->id); return FALSE; }
    if (!mdl_is_driver_mdl(buf->Mdl))
    {
        violation("wsk-buf", "%s (socket #%d): MDL %p is not one the driver allocated (or it was freed)",
                  op, s->id, buf->Mdl);
        return FALSE;
    }
    for (m = buf->Mdl; m; m = m->Next) total += m->ByteCount;
    if (buf->Length == 0)
        violation("wsk-buf", "%s (socket #%d): zero-length WSK_BUF", op, s->id);
    if ((SIZE_T)buf->Offset + buf->Length > total || buf->Length > total)
    {
        violation("wsk-buf", "%s (socket #%d): WSK_BUF Offset %lu + Length %Iu exceeds the MDL chain's %Iu bytes",
                  op, s->id, buf->Offset, buf->Length, total);
        return FALSE;
    }
    if ((SIZE_T)buf->Offset + buf->Length > buf->Mdl->ByteCount)
    {
        violation("wsk-buf", "%s (socket #%d): range crosses into a chained MDL (not supported by this provider)",
                  op, s->id);
        return FALSE;
    }
    if (!(buf->Mdl->MdlFlags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL)) || !buf->Mdl->MappedSystemVa)
    {
        violation("wsk-buf", "%s (socket #%d): MDL %p has no system address (MmBuildMdlForNonPagedPool not called)",
                  op, s->id, buf->Mdl);
        return FALSE;
    }
    *data = (char *)buf->Mdl->MappedSystemVa + buf->Offset;
    return TRUE;
}

/* ------------------------------------------------------------------ WSK: client level */

static struct binding *binding_from_client(WSK_CLIENT *client, const char *op)
{
    struct wsk_client *c = (struct wsk_client *)client;
    if (!c || c->magic != MAGIC_CLIENT)
    {
        violation("client", "%s with %p, not the PWSK_CLIENT returned by NmrClientAttachProvider", op, client);
        return NULL;
    }
    if (!binding_usable(c->binding, op, 0)) return NULL;
    return c->binding;
}

/* WskControlClient: https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_control_client */
static NTSTATUS WINAPI wsk_control_client(WSK_CLIENT *client, ULONG code, SIZE_T in_size, void *in,
        SIZE_T out_size, void *out, SIZE_T *out_returned, IRP *irp)
{
    struct binding *b = binding_from_client(client, "WskControlClient");
    const WSK_EVENT_CALLBACK_CONTROL *control = in;
    const ULONG known = PROV_WSK_EVENT_ACCEPT | PROV_WSK_EVENT_RECEIVE | PROV_WSK_EVENT_DISCONNECT |
                        PROV_WSK_EVENT_SEND_BACKLOG;
    if (!b) return STATUS_INVALID_PARAMETER;
    if (code != PROV_WSK_SET_STATIC_EVENT_CALLBACKS)
    {
        violation("unexpected-call", "WskControlClient code %lu (only WSK_SET_STATIC_EVENT_CALLBACKS is expected)", code);
        return STATUS_NOT_SUPPORTED;
    }
    if (irp) violation("control-client", "WSK_SET_STATIC_EVENT_CALLBACKS with an IRP (must be NULL)");
    if (in_size != sizeof(WSK_EVENT_CALLBACK_CONTROL) || !in)
    {
        violation("control-client", "WSK_SET_STATIC_EVENT_CALLBACKS input size %Iu (expected %Iu) buffer %p",
                  in_size, sizeof(WSK_EVENT_CALLBACK_CONTROL), in);
        return STATUS_INVALID_PARAMETER;
    }
    if (!control->NpiId || memcmp(control->NpiId, &PROV_NPI_WSK_INTERFACE_ID, sizeof(GUID)))
    {
        violation("control-client", "WSK_SET_STATIC_EVENT_CALLBACKS NpiId %p is not NPI_WSK_INTERFACE_ID", control->NpiId);
        return STATUS_INVALID_PARAMETER;
    }
    if (control->EventMask & ~known)
        violation("control-client", "event mask %#lx has unknown bits", control->EventMask);
    if (b->sockets_created)
        violation("control-client", "WSK_SET_STATIC_EVENT_CALLBACKS after %ld socket(s) were created", b->sockets_created);
    if (!(control->EventMask & PROV_WSK_EVENT_ACCEPT))
        plog("note: static event mask %#lx does not enable WSK_EVENT_ACCEPT (%#x)", control->EventMask,
             PROV_WSK_EVENT_ACCEPT);
    b->event_mask = control->EventMask;
    plog("binding %d: static event callbacks %#lx", b->id, control->EventMask);
    if (out_returned) *out_returned = 0;
    return STATUS_SUCCESS;
}

/* WskSocket: https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_socket */
static NTSTATUS WINAPI wsk_socket(WSK_CLIENT *client, ADDRESS_FAMILY family, USHORT type, ULONG protocol,
        ULONG flags, void *context, const void *dispatch, PEPROCESS process, PETHREAD thread,
        SECURITY_DESCRIPTOR *sd, IRP *irp)
{
    struct binding *b = binding_from_client(client, "WskSocket");
    const WSK_CLIENT_LISTEN_DISPATCH *ld = dispatch;
    struct sock *s;
    SOCKET so;
    NTSTATUS status;
    int one = 1;
    u_long nb = 1;

    if (!b) return STATUS_INVALID_PARAMETER;
    InterlockedIncrement(&b->calls_in_progress);
    if ((status = submit_irp(irp, "WskSocket", 0))) goto done;
    if (family != AF_INET && family != AF_INET6)
    {
        violation("wsk-socket", "WskSocket address family %u (AF_INET is 2, AF_INET6 is 23)", family);
        status = finish_call(irp, STATUS_INVALID_PARAMETER, 0);
        goto done;
    }
    if (type != SOCK_STREAM || protocol != IPPROTO_TCP || flags != WSK_FLAG_LISTEN_SOCKET)
    {
        violation("wsk-socket", "WskSocket type %u protocol %lu flags %#lx (wskecho creates TCP listening sockets: "
                  "1, 6, WSK_FLAG_LISTEN_SOCKET)", type, protocol, flags);
        status = finish_call(irp, STATUS_INVALID_PARAMETER, 0);
        goto done;
    }
    if (!ld || ((b->event_mask & PROV_WSK_EVENT_ACCEPT) && !ld->WskAcceptEvent))
    {
        violation("wsk-socket", "listening socket without a WSK_CLIENT_LISTEN_DISPATCH / WskAcceptEvent (%p) "
                  "while accept events are enabled", ld);
        status = finish_call(irp, STATUS_INVALID_PARAMETER, 0);
        goto done;
    }
    if (process || thread || sd) plog("note: WskSocket with process %p thread %p sd %p", process, thread, sd);
    so = socket(family, SOCK_STREAM, IPPROTO_TCP);
    if (so == INVALID_SOCKET)
    {
        status = finish_call(irp, wsa_status(WSAGetLastError()), 0);
        goto done;
    }
    ioctlsocket(so, FIONBIO, &nb);
    setsockopt(so, SOL_SOCKET, SO_REUSEADDR, (char *)&one, sizeof(one));
    /* WSK's default for IPV6_V6ONLY is not documented: dual-stack here, the default that breaks a
     * driver relying on it (its [::] listener would take the IPv4 port too); binding an IPv6
     * listener without setting the option is a violation (wsk_bind). */
    if (family == AF_INET6)
    {
        DWORD zero = 0;
        setsockopt(so, IPPROTO_IPV6, IPV6_V6ONLY, (char *)&zero, sizeof(zero));
    }
    s = new_sock(b, TRUE, so, family);
    s->context = context;
    s->client_dispatch = dispatch;
    plog("socket #%d: listening socket created (family %u)", s->id, family);
    status = finish_call(irp, STATUS_SUCCESS, (ULONG_PTR)&s->wsk);
done:
    InterlockedDecrement(&b->calls_in_progress);
    return status;
}

static NTSTATUS WINAPI wsk_socket_connect(WSK_CLIENT *client, USHORT type, ULONG protocol, SOCKADDR *local,
        SOCKADDR *remote, ULONG flags, void *context, const WSK_CLIENT_CONNECTION_DISPATCH *dispatch,
        PEPROCESS process, PETHREAD thread, SECURITY_DESCRIPTOR *sd, IRP *irp)
{
    violation("unexpected-call", "WskSocketConnect (not used by wskecho)");
    return STATUS_NOT_SUPPORTED;
}

static NTSTATUS WINAPI wsk_get_address_info(WSK_CLIENT *client, UNICODE_STRING *node, UNICODE_STRING *service,
        ULONG name_space, GUID *provider, ADDRINFOEXW *hints, ADDRINFOEXW **result, PEPROCESS process,
        PETHREAD thread, IRP *irp)
{
    violation("unexpected-call", "WskGetAddressInfo (not used by wskecho)");
    return STATUS_NOT_SUPPORTED;
}

static void WINAPI wsk_free_address_info(WSK_CLIENT *client, ADDRINFOEXW *info)
{
    violation("unexpected-call", "WskFreeAddressInfo (not used by wskecho)");
}

static NTSTATUS WINAPI wsk_get_name_info(WSK_CLIENT *client, SOCKADDR *sa, ULONG len, UNICODE_STRING *node,
        UNICODE_STRING *service, ULONG flags, PEPROCESS process, PETHREAD thread, IRP *irp)
{
    violation("unexpected-call", "WskGetNameInfo (not used by wskecho)");
    return STATUS_NOT_SUPPORTED;
}

/* WSK_PROVIDER_DISPATCH: https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_provider_dispatch */
static const WSK_PROVIDER_DISPATCH provider_dispatch =
{
    MAKE_WSK_VERSION(1, 0), 0,
    wsk_socket, wsk_socket_connect, wsk_control_client, wsk_get_address_info, wsk_free_address_info,
    wsk_get_name_info,
};

/* ------------------------------------------------------------------ WSK: socket level */

static NTSTATUS WINAPI wsk_control_socket(WSK_SOCKET *ws, WSK_CONTROL_SOCKET_TYPE type, ULONG code, ULONG level,
        SIZE_T in_size, void *in, SIZE_T out_size, void *out, SIZE_T *out_returned, IRP *irp)
{
    struct sock *s = sock_from(ws, "WskControlSocket");
    NTSTATUS status;
    DWORD value;

    if (!s) return STATUS_INVALID_PARAMETER;
    if (!check_open(s, "WskControlSocket")) return STATUS_INVALID_DEVICE_STATE;
    enter_call(s, "WskControlSocket");
    /* An IRP for a socket option, as the page's example passes one:
     * https://learn.microsoft.com/windows-hardware/drivers/network/performing-control-operations-on-a-socket */
    if ((status = submit_irp(irp, "WskControlSocket", s->id))) goto done;
    if (type != WskSetOption || !((level == IPPROTO_IPV6 && code == IPV6_V6ONLY) ||
                                  (level == IPPROTO_TCP && code == TCP_NODELAY)))
    {
        violation("unexpected-call", "WskControlSocket type %d code %#lx level %lu on socket #%d (wskecho sets "
                  "only IPV6_V6ONLY and TCP_NODELAY)", type, code, level, s->id);
        status = finish_call(irp, STATUS_NOT_SUPPORTED, 0);
        goto done;
    }
    if (level == IPPROTO_IPV6 && (!s->listener || s->family != AF_INET6 || s->bound))
    {
        violation("wsk-option", "IPV6_V6ONLY on socket #%d: %s", s->id,
                  !s->listener ? "not a listening socket" : s->family != AF_INET6 ? "not an IPv6 socket"
                  : "already bound (the option must come before WskBind)");
        status = finish_call(irp, STATUS_INVALID_DEVICE_STATE, 0);
        goto done;
    }
    /* wskecho sets TCP_NODELAY on an accepted connection before its first receive
     * (https://learn.microsoft.com/windows-hardware/drivers/network/wsk-socket-options) */
    if (level == IPPROTO_TCP && (s->listener || s->receives))
    {
        violation("wsk-option", "TCP_NODELAY on socket #%d: %s", s->id,
                  s->listener ? "a listening socket" : "after its first WskReceive");
        status = finish_call(irp, STATUS_INVALID_DEVICE_STATE, 0);
        goto done;
    }
    if (in_size != sizeof(ULONG) || !in || out_size || out)
    {
        violation("wsk-option", "%s on socket #%d: input %Iu bytes at %p, output %Iu bytes at %p "
                  "(a ULONG in, nothing out)", level == IPPROTO_TCP ? "TCP_NODELAY" : "IPV6_V6ONLY", s->id,
                  in_size, in, out_size, out);
        status = finish_call(irp, STATUS_INVALID_PARAMETER, 0);
        goto done;
    }
    value = *(const ULONG *)in;
    if (setsockopt(s->s, level, code, (char *)&value, sizeof(value)))
    {
        status = finish_call(irp, wsa_status(WSAGetLastError()), 0);
        goto done;
    }
    if (level == IPPROTO_TCP)
    {
        s->no_delay = value != 0;
        if (value) InterlockedIncrement(&stat_no_delay);
        plog("socket #%d: TCP_NODELAY = %lu", s->id, value);
    }
    else
    {
        s->ipv6_only = value != 0;
        plog("socket #%d: IPV6_V6ONLY = %lu", s->id, value);
    }
    status = finish_call(irp, STATUS_SUCCESS, 0);
done:
    leave_call(s);
    return status;
}

struct closer_arg { struct sock *s; IRP *irp; };
static DWORD WINAPI closer_thread(void *arg);

/* WskCloseSocket: https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_close_socket */
static NTSTATUS WINAPI wsk_close_socket(WSK_SOCKET *ws, IRP *irp)
{
    struct sock *s = sock_from(ws, "WskCloseSocket");
    DWORD tid = GetCurrentThreadId();
    NTSTATUS status;
    HANDLE h;
    int i;

    if (!s) return STATUS_INVALID_PARAMETER;
    if (InterlockedIncrement(&s->close_calls) > 1)
    {
        violation("close", "WskCloseSocket called twice on socket #%d", s->id);
        return STATUS_INVALID_PARAMETER;
    }
    binding_usable(s->binding, "WskCloseSocket", s->id);
    EnterCriticalSection(&s->cs);
    for (i = 0; i < MAX_EXEC; i++)
        if (s->exec[i].depth && s->exec[i].tid != tid)
            violation("close-while-executing", "WskCloseSocket on socket #%d while %s is executing on thread %04lx",
                      s->id, s->exec[i].op, s->exec[i].tid);
    LeaveCriticalSection(&s->cs);
    enter_call(s, "WskCloseSocket");
    if ((status = submit_irp(irp, "WskCloseSocket", s->id)))
    {
        leave_call(s);
        return status;
    }
    IoMarkIrpPending(irp);
    InterlockedExchange(&s->closing, 1);
    SetEvent(s->rx.wake);
    SetEvent(s->tx.wake);
    {
        struct closer_arg *a = HeapAlloc(GetProcessHeap(), 0, sizeof(*a));
        a->s = s;
        a->irp = irp;
        h = start_thread(closer_thread, a);
        CloseHandle(h);
    }
    leave_call(s);
    return STATUS_PENDING;
}

static DWORD WINAPI closer_thread(void *arg)
{
    struct closer_arg *a = arg;
    struct sock *s = a->s;
    IRP *irp = a->irp;
    HANDLE rx, tx, acc;
    HeapFree(GetProcessHeap(), 0, a);

    EnterCriticalSection(&s->cs);
    rx = s->rx.thread; tx = s->tx.thread; acc = s->accept_thread;
    LeaveCriticalSection(&s->cs);
    if (rx) WaitForSingleObject(rx, INFINITE);
    if (tx) WaitForSingleObject(tx, INFINITE);
    if (acc) WaitForSingleObject(acc, INFINITE);
    if (!s->listener && !(s->sent_fin && s->got_fin))
    {
        struct linger lg = { 1, 0 };   /* abortive unless both directions were disconnected */
        setsockopt(s->s, SOL_SOCKET, SO_LINGER, (char *)&lg, sizeof(lg));
    }
    closesocket(s->s);
    plog("socket #%d: closed (%s)", s->id, s->listener ? "listener" : (s->sent_fin && s->got_fin) ? "graceful" : "abortive");
    sock_gone(s);
    complete_irp(irp, STATUS_SUCCESS, 0);
    return 0;
}

/* ---- listening sockets */

static DWORD WINAPI accept_thread(void *arg)
{
    struct sock *ls = arg;
    const WSK_CLIENT_LISTEN_DISPATCH *ld = ls->client_dispatch;
    while (!ls->closing)
    {
        SOCKADDR_STORAGE remote, local;
        int rlen = sizeof(remote), llen = sizeof(local);
        SOCKET c;
        struct sock *cs;
        void *ctx = NULL;
        const WSK_CLIENT_CONNECTION_DISPATCH *cd = NULL;
        const char *previous;
        NTSTATUS ret;
        DWORD t0;
        u_long nb = 1;
        char rtext[80];

        if (!wait_socket(ls, FALSE)) continue;
        if (ls->closing) break;
        c = accept(ls->s, (SOCKADDR *)&remote, &rlen);
        if (c == INVALID_SOCKET) continue;
        ioctlsocket(c, FIONBIO, &nb);
        getsockname(c, (SOCKADDR *)&local, &llen);
        if (!(ls->binding->event_mask & PROV_WSK_EVENT_ACCEPT) || !ld || !ld->WskAcceptEvent)
        {
            plog("socket #%d: connection from %s dropped: accept events not enabled", ls->id,
                 addr_text((SOCKADDR *)&remote, rtext, sizeof(rtext)));
            closesocket(c);
            continue;
        }
        if (settings.kill_listener && (DWORD)InterlockedIncrement(&accepted_connections) == settings.kill_listener)
        {
            /* The listening socket stops working: WskAcceptEvent with AcceptSocket NULL, after
             * which the client must close it (ddi/wsk/nc-wsk-pfn_wsk_accept_event). */
            struct linger lg = { 1, 0 };
            setsockopt(c, SOL_SOCKET, SO_LINGER, (char *)&lg, sizeof(lg));
            closesocket(c);
            plog("socket #%d: stops working by setting (KillListener): WskAcceptEvent without a socket",
                 ls->id);
            previous = callback_enter("WskAcceptEvent");
            ret = ld->WskAcceptEvent(ls->context, 0, NULL, NULL, NULL, NULL, NULL);
            callback_leave(previous);
            if (ret == STATUS_SUCCESS)
                violation("accept-event", "WskAcceptEvent without a socket returned STATUS_SUCCESS on socket #%d",
                          ls->id);
            break;
        }
        cs = new_sock(ls->binding, FALSE, c, remote.ss_family);
        cs->accept_ctx = ACCEPT_OUT_UNWRITTEN;
        InterlockedExchange(&cs->accept_pending, 1);
        t0 = GetTickCount();
        previous = callback_enter("WskAcceptEvent");
        ret = ld->WskAcceptEvent(ls->context, 0, (SOCKADDR *)&local, (SOCKADDR *)&remote, &cs->wsk,
                                 (void **)&cs->accept_ctx, &cd);
        callback_leave(previous);
        InterlockedExchange(&cs->accept_pending, 0);
        ctx = cs->accept_ctx;
        if (GetTickCount() - t0 > 2000)
            violation("callback-blocked", "WskAcceptEvent of socket #%d took %lu ms", ls->id, GetTickCount() - t0);
        if (ret == STATUS_SUCCESS && ctx == ACCEPT_OUT_UNWRITTEN)
            violation("accept-event", "WskAcceptEvent accepted socket #%d without writing "
                      "*AcceptSocketContext", cs->id);
        else if (ret == STATUS_SUCCESS && !cd && ctx)
            violation("accept-event", "accepted socket #%d with a context but no connection dispatch: "
                      "*AcceptSocketContext must be NULL when no event callback is enabled", cs->id);
        if (ret == STATUS_SUCCESS)
        {
            cs->context = ctx == ACCEPT_OUT_UNWRITTEN ? NULL : ctx;
            cs->client_dispatch = cd;
            if (!cd && (ls->binding->event_mask & (PROV_WSK_EVENT_RECEIVE | PROV_WSK_EVENT_DISCONNECT |
                                                   PROV_WSK_EVENT_SEND_BACKLOG)))
                violation("accept-event", "accepted socket #%d without a connection dispatch while connection "
                          "events %#lx are enabled", cs->id, ls->binding->event_mask);
            plog("socket #%d: accepted %s on listener #%d", cs->id,
                 addr_text((SOCKADDR *)&remote, rtext, sizeof(rtext)), ls->id);
        }
        else
        {
            if (ret != STATUS_REQUEST_NOT_ACCEPTED)
                violation("accept-event", "WskAcceptEvent returned %#lx (STATUS_SUCCESS or "
                          "STATUS_REQUEST_NOT_ACCEPTED expected)", ret);
            plog("socket #%d: connection from %s refused by the driver (%#lx)", cs->id,
                 addr_text((SOCKADDR *)&remote, rtext, sizeof(rtext)), ret);
            {
                struct linger lg = { 1, 0 };
                setsockopt(c, SOL_SOCKET, SO_LINGER, (char *)&lg, sizeof(lg));
            }
            closesocket(c);
            sock_gone(cs);
        }
    }
    return 0;
}

/* WskBind (listening socket): https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_bind */
static NTSTATUS WINAPI wsk_bind(WSK_SOCKET *ws, SOCKADDR *addr, ULONG flags, IRP *irp)
{
    struct sock *s = sock_from(ws, "WskBind");
    NTSTATUS status;
    LONG n;
    char text[80];

    if (!s) return STATUS_INVALID_PARAMETER;
    if (!check_open(s, "WskBind")) return STATUS_INVALID_DEVICE_STATE;
    enter_call(s, "WskBind");
    if ((status = submit_irp(irp, "WskBind", s->id))) goto done;
    if (!s->listener)
    {
        violation("wsk-bind", "WskBind on connection socket #%d", s->id);
        status = finish_call(irp, STATUS_INVALID_DEVICE_STATE, 0);
        goto done;
    }
    if (!addr || addr->sa_family != s->family || flags)
    {
        violation("wsk-bind", "WskBind on socket #%d (family %d): address family %d, flags %#lx", s->id, s->family,
                  addr ? addr->sa_family : -1, flags);
        status = finish_call(irp, STATUS_INVALID_PARAMETER, 0);
        goto done;
    }
    if (InterlockedIncrement(&s->bound) > 1)
    {
        violation("wsk-bind", "WskBind twice on socket #%d", s->id);
        status = finish_call(irp, STATUS_INVALID_DEVICE_STATE, 0);
        goto done;
    }
    addr_text(addr, text, sizeof(text));
    if (s->family == AF_INET6 && !s->ipv6_only)
        violation("wsk-option", "WskBind of IPv6 listening socket #%d to %s without IPV6_V6ONLY "
                  "(WskControlSocket before the bind: WSK's default is not documented)", s->id, text);
    n = InterlockedIncrement(&bind_calls);
    if (settings.bind_failure && (settings.bind_failure == 0xffffffff || (DWORD)n == settings.bind_failure))
    {
        plog("socket #%d: bind %s failed by setting (STATUS_ADDRESS_ALREADY_EXISTS)", s->id, text);
        status = finish_call(irp, STATUS_ADDRESS_ALREADY_EXISTS, 0);
        goto done;
    }
    if (bind(s->s, addr, s->family == AF_INET ? sizeof(SOCKADDR_IN) : sizeof(SOCKADDR_IN6)) ||
        listen(s->s, SOMAXCONN))
    {
        int err = WSAGetLastError();
        plog("socket #%d: bind/listen %s failed: error %d", s->id, text, err);
        status = finish_call(irp, wsa_status(err), 0);
        goto done;
    }
    plog("socket #%d: listening on %s", s->id, text);
    EnterCriticalSection(&s->cs);
    s->accept_thread = start_thread(accept_thread, s);
    LeaveCriticalSection(&s->cs);
    status = finish_call(irp, STATUS_SUCCESS, 0);
done:
    leave_call(s);
    return status;
}

static NTSTATUS WINAPI wsk_accept(WSK_SOCKET *ws, ULONG flags, void *ctx, const WSK_CLIENT_CONNECTION_DISPATCH *d,
        SOCKADDR *local, SOCKADDR *remote, IRP *irp)
{
    violation("unexpected-call", "WskAccept (wskecho uses accept events)");
    return STATUS_NOT_SUPPORTED;
}

static NTSTATUS WINAPI wsk_inspect_complete(WSK_SOCKET *ws, WSK_INSPECT_ID *id, WSK_INSPECT_ACTION action, IRP *irp)
{
    violation("unexpected-call", "WskInspectComplete");
    return STATUS_NOT_SUPPORTED;
}

static NTSTATUS WINAPI wsk_get_local_address(WSK_SOCKET *ws, SOCKADDR *addr, IRP *irp)
{
    violation("unexpected-call", "WskGetLocalAddress");
    return STATUS_NOT_SUPPORTED;
}

/* WSK_PROVIDER_LISTEN_DISPATCH: https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_provider_listen_dispatch */
static const WSK_PROVIDER_LISTEN_DISPATCH listen_dispatch =
{
    { wsk_control_socket, wsk_close_socket },
    wsk_bind, wsk_accept, wsk_inspect_complete, wsk_get_local_address,
};

/* ---- connection sockets */

static NTSTATUS transfer(WSK_SOCKET *ws, WSK_BUF *buf, ULONG flags, IRP *irp, int op)
{
    const char *name = op == OP_RECEIVE ? "WskReceive" : "WskSend";
    struct sock *s = sock_from(ws, name);
    struct req *r;
    char *data;
    NTSTATUS status;

    if (!s) return STATUS_INVALID_PARAMETER;
    if (!check_open(s, name)) return STATUS_INVALID_DEVICE_STATE;
    enter_call(s, name);
    if ((status = submit_irp(irp, name, s->id))) goto done;
    if (s->listener)
    {
        violation("socket", "%s on listening socket #%d", name, s->id);
        status = finish_call(irp, STATUS_INVALID_DEVICE_STATE, 0);
        goto done;
    }
    if (!check_buf(s, buf, name, &data))
    {
        status = finish_call(irp, STATUS_INVALID_PARAMETER, 0);
        goto done;
    }
    if (flags) plog("note: %s on socket #%d with flags %#lx", name, s->id, flags);
    if (op == OP_RECEIVE) InterlockedIncrement(&s->receives);
    if (op == OP_SEND && s->sent_fin)
        violation("socket", "WskSend on socket #%d after its graceful WskDisconnect", s->id);
    r = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, sizeof(*r));
    r->irp = irp; r->op = op; r->mdl = buf->Mdl; r->data = data; r->length = buf->Length; r->flags = flags;
    status = start_request(s, op == OP_RECEIVE ? &s->rx : &s->tx, r);
done:
    leave_call(s);
    return status;
}

/* WskReceive: https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_receive */
static NTSTATUS WINAPI wsk_receive(WSK_SOCKET *ws, WSK_BUF *buf, ULONG flags, IRP *irp)
{
    return transfer(ws, buf, flags, irp, OP_RECEIVE);
}

/* WskSend: https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_send */
static NTSTATUS WINAPI wsk_send(WSK_SOCKET *ws, WSK_BUF *buf, ULONG flags, IRP *irp)
{
    return transfer(ws, buf, flags, irp, OP_SEND);
}

/* WskDisconnect: https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_disconnect */
static NTSTATUS WINAPI wsk_disconnect(WSK_SOCKET *ws, WSK_BUF *buf, ULONG flags, IRP *irp)
{
    struct sock *s = sock_from(ws, "WskDisconnect");
    struct req *r;
    NTSTATUS status;

    if (!s) return STATUS_INVALID_PARAMETER;
    if (!check_open(s, "WskDisconnect")) return STATUS_INVALID_DEVICE_STATE;
    enter_call(s, "WskDisconnect");
    if ((status = submit_irp(irp, "WskDisconnect", s->id))) goto done;
    if (s->listener || buf || (flags & ~PROV_WSK_FLAG_ABORTIVE))
    {
        violation("wsk-disconnect", "WskDisconnect on socket #%d (listener %d) buffer %p flags %#lx", s->id,
                  s->listener, buf, flags);
        status = finish_call(irp, STATUS_INVALID_PARAMETER, 0);
        goto done;
    }
    r = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, sizeof(*r));
    r->irp = irp; r->op = OP_DISCONNECT; r->flags = flags;
    status = start_request(s, &s->tx, r);
done:
    leave_call(s);
    return status;
}

static NTSTATUS WINAPI wsk_conn_bind(WSK_SOCKET *ws, SOCKADDR *addr, ULONG flags, IRP *irp)
{
    violation("unexpected-call", "WskBind on a connection socket (the dispatch table slot is WskBind)");
    return STATUS_NOT_SUPPORTED;
}

static NTSTATUS WINAPI wsk_connect(WSK_SOCKET *ws, SOCKADDR *addr, ULONG flags, IRP *irp)
{
    violation("unexpected-call", "WskConnect (the dispatch table slot is WskConnect)");
    return STATUS_NOT_SUPPORTED;
}

static NTSTATUS WINAPI wsk_conn_local(WSK_SOCKET *ws, SOCKADDR *addr, IRP *irp)
{
    violation("unexpected-call", "WskGetLocalAddress on a connection (slot WskGetLocalAddress)");
    return STATUS_NOT_SUPPORTED;
}

static NTSTATUS WINAPI wsk_conn_remote(WSK_SOCKET *ws, SOCKADDR *addr, IRP *irp)
{
    violation("unexpected-call", "WskGetRemoteAddress (slot WskGetRemoteAddress)");
    return STATUS_NOT_SUPPORTED;
}

static NTSTATUS WINAPI wsk_release(WSK_SOCKET *ws, WSK_DATA_INDICATION *list)
{
    violation("unexpected-call", "WskRelease (no receive events are delivered)");
    return STATUS_NOT_SUPPORTED;
}

static NTSTATUS WINAPI wsk_connect_ex(WSK_SOCKET *ws, SOCKADDR *addr, WSK_BUF *buf, ULONG flags, IRP *irp)
{
    violation("unexpected-call", "WskConnectEx");
    return STATUS_NOT_SUPPORTED;
}

/* WSK_PROVIDER_CONNECTION_DISPATCH: https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_provider_connection_dispatch */
static const WSK_PROVIDER_CONNECTION_DISPATCH connection_dispatch =
{
    { wsk_control_socket, wsk_close_socket },
    wsk_conn_bind, wsk_connect, wsk_conn_local, wsk_conn_remote, wsk_send, wsk_receive, wsk_disconnect,
    wsk_release, wsk_connect_ex, NULL, NULL,
};

/* ------------------------------------------------------------------ NMR */

static struct registration *reg_from(HANDLE h, const char *op)
{
    struct registration *reg = h;
    if (!reg || reg != the_reg || reg->magic != MAGIC_REG)
    {
        violation("nmr-handle", "%s(%p): not the handle NmrRegisterClient returned", op, h);
        return NULL;
    }
    return reg;
}

static struct binding *binding_from_handle(HANDLE h, const char *op)
{
    struct binding *b = h;
    int i;
    for (i = 0; i < nbindings; i++)
        if (all_bindings[i] == b && b->magic == MAGIC_BIND) return b;
    violation("nmr-handle", "%s(%p): not an NMR binding handle", op, h);
    return NULL;
}

/* Attaches a new binding (caller holds reg->op_cs). */
static void attach(struct registration *reg)
{
    struct binding *b;
    NTSTATUS status;

    if (nbindings >= ARRAY_SIZE(all_bindings)) return;
    b = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, sizeof(*b));
    b->magic = MAGIC_BIND;
    b->id = InterlockedIncrement(&next_binding_id);
    b->reg = reg;
    b->client.magic = MAGIC_CLIENT;
    b->client.binding = b;
    b->state = B_ATTACHING;
    b->changed = CreateEventW(NULL, FALSE, FALSE, NULL);
    all_bindings[nbindings++] = b;
    plog("binding %d: calling ClientAttachProvider", b->id);
    status = reg->orig->ClientAttachProvider((HANDLE)b, reg->context, &provider_registration);
    if (status == STATUS_SUCCESS && b->attach_calls == 1)
    {
        b->state = B_ATTACHED;
        reg->current = b;
        plog("binding %d: attached", b->id);
    }
    else
    {
        if (b->attach_calls)
            violation("attach", "ClientAttachProvider returned %#lx after NmrClientAttachProvider succeeded", status);
        else if (status == STATUS_SUCCESS)
            violation("attach", "ClientAttachProvider returned STATUS_SUCCESS without calling NmrClientAttachProvider");
        plog("binding %d: not attached (%#lx)", b->id, status);
        b->state = B_FAILED;
    }
}

/* Detaches b (caller holds reg->op_cs): ClientDetachProvider, the client's completion, the
 * provider side (every socket closed), then ClientCleanupBindingContext. */
static void detach(struct binding *b, const char *why)
{
    struct registration *reg = b->reg;
    NTSTATUS status;
    DWORD start;
    BOOL reported = FALSE;

    plog("binding %d: detaching (%s), %ld socket(s) open", b->id, why, b->open_sockets);
    b->state = B_DETACHING;
    InterlockedExchange(&b->detach_called, 1);
    status = reg->orig->ClientDetachProvider(b->client_binding_context);
    if (status == STATUS_PENDING)
    {
        InterlockedExchange(&b->detach_returned_pending, 1);
        InterlockedExchange(&b->detach_returned, 1);
        plog("binding %d: ClientDetachProvider returned STATUS_PENDING", b->id);
    }
    else
    {
        if (status != STATUS_SUCCESS)
            violation("detach", "ClientDetachProvider returned %#lx (STATUS_SUCCESS or STATUS_PENDING expected)", status);
        if (b->complete_calls)
            violation("detach-complete", "ClientDetachProvider returned %#lx after calling "
                      "NmrClientDetachProviderComplete", status);
        if (b->calls_in_progress)
            violation("detach", "ClientDetachProvider returned STATUS_SUCCESS with %ld WSK call(s) in progress",
                      b->calls_in_progress);
        InterlockedExchange(&b->detach_returned, 1);
        InterlockedExchange(&b->detach_done, 1);
        plog("binding %d: ClientDetachProvider returned STATUS_SUCCESS", b->id);
    }
    start = GetTickCount();
    while (!b->detach_done || b->open_sockets)
    {
        if (!reported && GetTickCount() - start > settings.grace_ms)
        {
            reported = TRUE;
            if (!b->detach_done)
                violation("detach-complete", "binding %d: NmrClientDetachProviderComplete not called %lu ms after "
                          "ClientDetachProvider returned STATUS_PENDING", b->id, settings.grace_ms);
            else
                violation("sockets-open", "binding %d: %ld socket(s) still open %lu ms after the detach started "
                          "(the client must close all its sockets)", b->id, b->open_sockets, settings.grace_ms);
        }
        WaitForSingleObject(b->changed, 50);
    }
    b->state = B_DETACHED;
    if (reg->current == b) reg->current = NULL;
    if (reg->orig->ClientCleanupBindingContext)
    {
        plog("binding %d: calling ClientCleanupBindingContext", b->id);
        reg->orig->ClientCleanupBindingContext(b->client_binding_context);
    }
    b->state = B_CLEANED;
    plog("binding %d: cleaned up", b->id);
}

static DWORD WINAPI late_attach_thread(void *arg)
{
    struct registration *reg = arg;
    Sleep(settings.attach_delay_ms);
    EnterCriticalSection(&reg->op_cs);
    if (!reg->deregistering) attach(reg);
    else plog("late attach skipped: the client is deregistering");
    LeaveCriticalSection(&reg->op_cs);
    return 0;
}

static DWORD WINAPI provider_detach_thread(void *arg)
{
    struct registration *reg = arg;
    Sleep(settings.detach_after_ms);
    EnterCriticalSection(&reg->op_cs);
    if (!reg->deregistering && reg->current)
    {
        detach(reg->current, "provider-initiated");
        LeaveCriticalSection(&reg->op_cs);
        Sleep(settings.reattach_after_ms);
        EnterCriticalSection(&reg->op_cs);
        if (!reg->deregistering)
        {
            plog("provider: attaching again after the provider-initiated detach");
            attach(reg);
        }
    }
    LeaveCriticalSection(&reg->op_cs);
    return 0;
}

static void ensure_wsa(void)
{
    WSADATA data;
    if (!wsa_started) { WSAStartup(MAKEWORD(2, 2), &data); wsa_started = TRUE; }
}

NTSTATUS WINAPI NmrRegisterClient(const NPI_CLIENT_CHARACTERISTICS *chars, void *context, HANDLE *handle)
{
    struct registration *reg;
    const NPI_REGISTRATION_INSTANCE *ri;

    ensure_wsa();
    if (!chars || !handle)
    {
        violation("register", "NmrRegisterClient(%p, %p, %p)", chars, context, handle);
        return STATUS_INVALID_PARAMETER;
    }
    ri = &chars->ClientRegistrationInstance;
    plog("NmrRegisterClient: Version %u Length %u (expected %u) Attach %p Detach %p Cleanup %p; instance Version %u "
         "Size %u (expected %u) NpiId %p ModuleId %p Number %lu",
         chars->Version, chars->Length, (unsigned)sizeof(*chars), chars->ClientAttachProvider,
         chars->ClientDetachProvider, chars->ClientCleanupBindingContext, ri->Version, ri->Size,
         (unsigned)sizeof(*ri), ri->NpiId, ri->ModuleId, ri->Number);
    if (chars->Version != 0 || chars->Length < sizeof(*chars) || !chars->ClientAttachProvider ||
        !chars->ClientDetachProvider)
    {
        violation("register", "bad NPI_CLIENT_CHARACTERISTICS (Version %u, Length %u, attach %p, detach %p)",
                  chars->Version, chars->Length, chars->ClientAttachProvider, chars->ClientDetachProvider);
        return STATUS_INVALID_PARAMETER;
    }
    if (ri->Version != 0 || ri->Size < sizeof(*ri) || !ri->NpiId || !ri->ModuleId)
    {
        violation("register", "bad ClientRegistrationInstance (Version %u, Size %u, NpiId %p, ModuleId %p)",
                  ri->Version, ri->Size, ri->NpiId, ri->ModuleId);
        return STATUS_INVALID_PARAMETER;
    }
    if (ri->ModuleId->Length < sizeof(NPI_MODULEID) || ri->ModuleId->Type != MIT_GUID)
        violation("register", "NPI_MODULEID Length %u (expected >= %u) Type %d (MIT_GUID = 1)",
                  ri->ModuleId->Length, (unsigned)sizeof(NPI_MODULEID), ri->ModuleId->Type);
    if (the_reg && !the_reg->deregister_complete)
    {
        violation("register", "NmrRegisterClient while a registration is active");
        return STATUS_INVALID_PARAMETER;
    }
    reg = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, sizeof(*reg));
    reg->magic = MAGIC_REG;
    reg->chars = *chars;
    reg->orig = chars;
    reg->context = context;
    InitializeCriticalSection(&reg->op_cs);
    reg->deregistered_event = CreateEventW(NULL, TRUE, FALSE, NULL);
    the_reg = reg;
    *handle = (HANDLE)reg;

    if (memcmp(ri->NpiId, &PROV_NPI_WSK_INTERFACE_ID, sizeof(GUID)))
    {
        plog("NmrRegisterClient: the client's NPI is not NPI_WSK_INTERFACE_ID: no provider matches, never attached");
        return STATUS_SUCCESS;
    }
    if (settings.attach_mode == 0)
    {
        EnterCriticalSection(&reg->op_cs);
        attach(reg);
        LeaveCriticalSection(&reg->op_cs);
    }
    else if (settings.attach_mode == 1)
    {
        plog("NmrRegisterClient: attaching late, in %lu ms", settings.attach_delay_ms);
        reg->late_thread = start_thread(late_attach_thread, reg);
    }
    else plog("NmrRegisterClient: never attaching (setting)");
    if (settings.detach_after_ms) CloseHandle(start_thread(provider_detach_thread, reg));
    return STATUS_SUCCESS;
}

NTSTATUS WINAPI NmrClientAttachProvider(HANDLE binding_handle, void *client_binding_context, const void *client_dispatch,
        void **provider_binding_context, const void **provider_dispatch_out)
{
    struct binding *b = binding_from_handle(binding_handle, "NmrClientAttachProvider");
    const WSK_CLIENT_DISPATCH *cd = client_dispatch;
    if (!b) return STATUS_INVALID_PARAMETER;
    if (b->state != B_ATTACHING)
    {
        violation("attach", "NmrClientAttachProvider outside ClientAttachProvider (binding %d)", b->id);
        return STATUS_INVALID_DEVICE_STATE;
    }
    if (InterlockedIncrement(&b->attach_calls) > 1)
    {
        violation("attach", "NmrClientAttachProvider called twice for binding %d", b->id);
        return STATUS_INVALID_DEVICE_STATE;
    }
    if (!provider_binding_context || !provider_dispatch_out)
    {
        violation("attach", "NmrClientAttachProvider with NULL out-parameters");
        return STATUS_INVALID_PARAMETER;
    }
    if (!cd || cd->Version < MAKE_WSK_VERSION(1, 0) || cd->Version > MAKE_WSK_VERSION(1, 0) || cd->Reserved)
        violation("attach", "WSK_CLIENT_DISPATCH %p Version %#x Reserved %u (version 1.0 = 0x100 expected)",
                  cd, cd ? cd->Version : 0, cd ? cd->Reserved : 0);
    b->client_binding_context = client_binding_context;
    b->client_dispatch = cd;
    *provider_binding_context = &b->client;
    *provider_dispatch_out = &provider_dispatch;
    plog("binding %d: NmrClientAttachProvider (client binding context %p)", b->id, client_binding_context);
    return STATUS_SUCCESS;
}

void WINAPI NmrClientDetachProviderComplete(HANDLE binding_handle)
{
    struct binding *b = binding_from_handle(binding_handle, "NmrClientDetachProviderComplete");
    const char *inside = callback_current();
    if (inside)
        violation("detach-complete", "NmrClientDetachProviderComplete called inside %s (it holds nothing that "
                  "keeps the driver loaded; a work item does)", inside);
    if (!b) return;
    if (InterlockedIncrement(&b->complete_calls) > 1)
    {
        violation("detach-complete", "NmrClientDetachProviderComplete called twice for binding %d", b->id);
        return;
    }
    if (!b->detach_called)
    {
        violation("detach-complete", "NmrClientDetachProviderComplete before ClientDetachProvider (binding %d)", b->id);
        return;
    }
    if (b->detach_returned && !b->detach_returned_pending)
    {
        violation("detach-complete", "NmrClientDetachProviderComplete after ClientDetachProvider returned "
                  "STATUS_SUCCESS (binding %d)", b->id);
        return;
    }
    if (b->calls_in_progress > 1)
        plog("note: NmrClientDetachProviderComplete with %ld WSK call(s) executing", b->calls_in_progress);
    plog("binding %d: NmrClientDetachProviderComplete", b->id);
    InterlockedExchange(&b->detach_done, 1);
    SetEvent(b->changed);
}

static DWORD WINAPI deregister_thread(void *arg)
{
    struct registration *reg = arg;
    if (reg->late_thread) WaitForSingleObject(reg->late_thread, INFINITE);
    EnterCriticalSection(&reg->op_cs);
    if (reg->current) detach(reg->current, "client deregistration");
    LeaveCriticalSection(&reg->op_cs);
    /* The NMR finishes its own bookkeeping after the last cleanup: a client that returns from
     * Unload on its own binding count instead of NmrWaitForClientDeregisterComplete is caught. */
    Sleep(50);
    InterlockedExchange(&reg->deregister_complete, 1);
    plog("deregistration complete");
    SetEvent(reg->deregistered_event);
    return 0;
}

NTSTATUS WINAPI NmrDeregisterClient(HANDLE handle)
{
    struct registration *reg = reg_from(handle, "NmrDeregisterClient");
    if (!reg) return STATUS_INVALID_PARAMETER;
    if (InterlockedIncrement(&reg->deregistering) > 1)
    {
        violation("deregister", "NmrDeregisterClient called twice");
        return STATUS_INVALID_PARAMETER;
    }
    plog("NmrDeregisterClient");
    CloseHandle(start_thread(deregister_thread, reg));
    return STATUS_PENDING;
}

NTSTATUS WINAPI NmrWaitForClientDeregisterComplete(HANDLE handle)
{
    struct registration *reg = reg_from(handle, "NmrWaitForClientDeregisterComplete");
    if (!reg) return STATUS_INVALID_PARAMETER;
    if (!reg->deregistering)
    {
        violation("deregister", "NmrWaitForClientDeregisterComplete before NmrDeregisterClient");
        return STATUS_INVALID_PARAMETER;
    }
    InterlockedIncrement(&reg->wait_called);
    WaitForSingleObject(reg->deregistered_event, INFINITE);
    plog("NmrWaitForClientDeregisterComplete returns");
    return STATUS_SUCCESS;
}

/* ------------------------------------------------------------------ run state */

void provider_reset(void)
{
    static BOOL init;
    if (!init) { InitializeCriticalSection(&sock_list_cs); init = TRUE; }
    the_reg = NULL;
    entry_status = STATUS_PENDING;
    unload_returned = FALSE;
    all_socks = NULL;   /* the previous run's objects are abandoned, never reused */
    nbindings = 0;
    next_sock_id = next_binding_id = bind_calls = accepted_connections = 0;
    stat_inline = stat_pending = stat_short = stat_no_delay = 0;
}

void provider_entry_returned(NTSTATUS status)
{
    entry_status = status;
    if (status && the_reg && !the_reg->deregister_complete)
        violation("entry", "DriverEntry failed (%#lx) while still registered with the NMR", status);
}

/* "A client module must not return from a call to its Unload function until after
 * deregistration is complete": https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nf-netioddk-nmrwaitforclientderegistercomplete */
void provider_unload_returned(void)
{
    struct registration *reg = the_reg;
    unload_returned = TRUE;
    if (reg && !reg->deregistering)
        violation("unload", "DriverUnload returned without NmrDeregisterClient");
    else if (reg && !reg->deregister_complete)
        violation("unload", "DriverUnload returned before the NMR deregistration completed");
}

void provider_finish(void)
{
    struct registration *reg = the_reg;
    struct sock *s;
    int i, open = 0;
    if (reg && !unload_returned && !entry_status)
        violation("unload", "the driver image was unloaded without its DriverUnload being called");
    if (reg)
    {
        if (!reg->deregistering)
            violation("unload", "the driver was unloaded while still registered with the NMR (no NmrDeregisterClient)");
        else if (!reg->deregister_complete)
            violation("unload", "the driver's Unload returned before its NMR deregistration completed");
        else if (!reg->wait_called)
            plog("note: deregistration completed without NmrWaitForClientDeregisterComplete");
    }
    for (i = 0; i < nbindings; i++)
        if (all_bindings[i]->state != B_CLEANED && all_bindings[i]->state != B_FAILED)
            violation("unload", "binding %d not cleaned up at unload (state %ld)", all_bindings[i]->id,
                      all_bindings[i]->state);
    EnterCriticalSection(&sock_list_cs);
    for (s = all_socks; s; s = s->all_next) if (s->magic == MAGIC_SOCK) open++;
    LeaveCriticalSection(&sock_list_cs);
    if (open) violation("unload", "%d socket(s) never closed", open);
    plog("sockets: %ld created, %d open at unload; bindings: %d", next_sock_id, open, nbindings);
    plog("completions: %ld inside the WSK call, %ld after it returned STATUS_PENDING (closes not counted); "
         "%ld receives shortened", stat_inline, stat_pending, stat_short);
    plog("options: TCP_NODELAY set on %ld connection(s)", stat_no_delay);
}
