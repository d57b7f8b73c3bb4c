/*
 * wtprobe.sys: a minimal NMR/WSK client driver that breaks one rule on purpose, chosen by
 * HKLM\SYSTEM\CurrentControlSet\Services\wtprobe\Parameters\Defect (REG_DWORD). It exists only
 * to show that each of the provider's checks can fire (scripts/wine-test provider-checks);
 * Defect 0 breaks nothing and must give a clean verdict.
 *
 *   0 none          1 pool leak           2 MDL leak              3 IRP leak
 *   4 completion routine returning STATUS_SUCCESS                 5 WskCloseSocket twice
 *   6 WskBind after WskCloseSocket        7 Unload without waiting for deregistration
 *   8 IRP without a completion routine    9 NmrClientDetachProviderComplete after STATUS_SUCCESS
 *  10 completion routine set with IoSetCompletionRoutine (not the unload-safe ...Ex)
 */
#include <stdarg.h>
#define WIN32_NO_STATUS
#include "windef.h"
#include "winbase.h"
#include "winternl.h"
#undef WIN32_NO_STATUS
#include "ntstatus.h"
#include "winsock2.h"
#include "ws2tcpip.h"
#include "ddk/wdm.h"
#include "ddk/wsk.h"
#include "nmr.h"

static ULONG defect;
static HANDLE nmr_handle, binding_handle;
static WSK_CLIENT *client;
static const WSK_PROVIDER_DISPATCH *dispatch;
static KEVENT done;
static ULONG_PTR last_information;
static LONG bad_routine;
static const WSK_CLIENT_DISPATCH client_dispatch = { MAKE_WSK_VERSION(1, 0), 0, NULL };
static const WSK_CLIENT_LISTEN_DISPATCH listen_dispatch = { NULL, NULL, NULL };
static const NPI_MODULEID module_id = { sizeof(NPI_MODULEID), MIT_GUID,
    { { 0x1b0a5c33, 0x7d21, 0x4a9e, { 0x8f, 0x10, 0x22, 0x6b, 0x3c, 0x90, 0x5e, 0x71 } } } };

static NTSTATUS WINAPI attach(HANDLE h, void *ctx, const NPI_REGISTRATION_INSTANCE *pri)
{
    void *pctx;
    const void *pd;
    NTSTATUS status = NmrClientAttachProvider(h, &binding_handle, &client_dispatch, &pctx, &pd);
    if (!status) { binding_handle = h; client = pctx; dispatch = pd; }
    return status;
}

static NTSTATUS WINAPI detach(void *ctx)
{
    if (defect == 9) NmrClientDetachProviderComplete(binding_handle);
    return STATUS_SUCCESS;
}

static void WINAPI cleanup(void *ctx) { }

static const NPI_CLIENT_CHARACTERISTICS chars =
{
    0, sizeof(NPI_CLIENT_CHARACTERISTICS), attach, detach, cleanup,
    { 0, sizeof(NPI_REGISTRATION_INSTANCE), &PROV_NPI_WSK_INTERFACE_ID, &module_id, 0, NULL },
};

static NTSTATUS WINAPI completed(DEVICE_OBJECT *device, IRP *irp, void *context)
{
    last_information = irp->IoStatus.Information;
    KeSetEvent(&done, 0, FALSE);
    /* defect 4: the first completion lets IoCompleteRequest free the driver's IRP */
    return bad_routine-- > 0 ? STATUS_SUCCESS : STATUS_MORE_PROCESSING_REQUIRED;
}

/* the call on the prepared IRP finished: its Information */
static ULONG_PTR wait_irp(void)
{
    KeWaitForSingleObject(&done, Executive, KernelMode, FALSE, NULL);
    KeClearEvent(&done);
    return last_information;
}

/* wdm.h's IoSetCompletionRoutineEx (not in Wine 8.0's headers; the provider supplies it) */
NTSTATUS WINAPI IoSetCompletionRoutineEx(DEVICE_OBJECT *, IRP *, PIO_COMPLETION_ROUTINE, void *, BOOLEAN,
                                         BOOLEAN, BOOLEAN);

static DEVICE_OBJECT *completion_device;

static void prepare(IRP *irp)
{
    IoReuseIrp(irp, STATUS_UNSUCCESSFUL);
    if (defect == 10) IoSetCompletionRoutine(irp, completed, NULL, TRUE, TRUE, TRUE);
    else if (defect != 8) IoSetCompletionRoutineEx(completion_device, irp, completed, NULL, TRUE, TRUE, TRUE);
}

static void WINAPI unload(DRIVER_OBJECT *driver)
{
    NTSTATUS status = NmrDeregisterClient(nmr_handle);
    if (status == STATUS_PENDING && defect != 7) NmrWaitForClientDeregisterComplete(nmr_handle);
    if (completion_device) IoDeleteDevice(completion_device);
}

NTSTATUS WINAPI DriverEntry(DRIVER_OBJECT *driver, UNICODE_STRING *path)
{
    OBJECT_ATTRIBUTES attr;
    UNICODE_STRING name;
    HANDLE key;
    WCHAR buffer[MAX_PATH];
    struct { KEY_VALUE_PARTIAL_INFORMATION info; ULONG more[4]; } value;
    ULONG len;
    IRP *irp;
    WSK_SOCKET *socket;

    /* <service key>\Parameters\Defect */
    memcpy(buffer, path->Buffer, path->Length);
    memcpy(buffer + path->Length / sizeof(WCHAR), L"\\Parameters", 12 * sizeof(WCHAR));
    RtlInitUnicodeString(&name, buffer);
    InitializeObjectAttributes(&attr, &name, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);
    if (!ZwOpenKey(&key, KEY_READ, &attr))
    {
        RtlInitUnicodeString(&name, L"Defect");
        if (!ZwQueryValueKey(key, &name, KeyValuePartialInformation, &value, sizeof(value), &len))
            defect = *(ULONG *)value.info.Data;
        ZwClose(key);
    }
    DbgPrintEx(0, 0, "wtprobe: defect %lu\n", defect);
    KeInitializeEvent(&done, NotificationEvent, FALSE);
    if (IoCreateDevice(driver, 0, NULL, FILE_DEVICE_UNKNOWN, FILE_DEVICE_SECURE_OPEN, FALSE, &completion_device))
        return STATUS_UNSUCCESSFUL;
    if (NmrRegisterClient(&chars, NULL, &nmr_handle))
    {
        IoDeleteDevice(completion_device);
        return STATUS_UNSUCCESSFUL;
    }
    driver->DriverUnload = unload;
    if (!dispatch) return STATUS_SUCCESS;

    if (defect == 1) ExAllocatePoolWithTag(NonPagedPool, 100, 'borP');
    if (defect == 2) IoAllocateMdl(buffer, sizeof(buffer), FALSE, FALSE, NULL);
    irp = IoAllocateIrp(1, FALSE);
    if (defect == 3) irp = IoAllocateIrp(1, FALSE);

    if (defect == 4) bad_routine = 1;
    prepare(irp);
    if (dispatch->WskSocket(client, AF_INET, SOCK_STREAM, IPPROTO_TCP, WSK_FLAG_LISTEN_SOCKET, NULL,
                            &listen_dispatch, NULL, NULL, NULL, irp) == STATUS_INVALID_PARAMETER)
    {
        IoFreeIrp(irp); /* refused (defect 8): nothing was created */
        return STATUS_SUCCESS;
    }
    socket = (WSK_SOCKET *)wait_irp();
    if (defect == 4) irp = IoAllocateIrp(1, FALSE); /* the first one was freed by IoCompleteRequest */

    prepare(irp);
    ((const WSK_PROVIDER_LISTEN_DISPATCH *)socket->Dispatch)->Basic.WskCloseSocket(socket, irp);
    wait_irp();
    if (defect == 5 || defect == 6)
    {
        SOCKADDR_IN sin = { AF_INET };
        prepare(irp);
        if (defect == 5)
            ((const WSK_PROVIDER_LISTEN_DISPATCH *)socket->Dispatch)->Basic.WskCloseSocket(socket, irp);
        else
            ((const WSK_PROVIDER_LISTEN_DISPATCH *)socket->Dispatch)->WskBind(socket, (SOCKADDR *)&sin, 0, irp);
    }
    IoFreeIrp(irp);
    return STATUS_SUCCESS;
}
