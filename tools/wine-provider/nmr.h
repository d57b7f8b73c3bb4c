/*
 * NMR (netioddk.h) and the WSK items Wine's ddk/wsk.h lacks, declared for the test provider
 * from Microsoft's reference pages (cited per item). Written for this provider; nothing here is
 * generated from, or shared with, the driver's Rust FFI (crates/wsk-kernel/src/ffi): a wrong layout on either side
 * must show up as a failing run.
 */
#ifndef WINE_PROVIDER_NMR_H
#define WINE_PROVIDER_NMR_H

/* NPIID: a GUID naming a Network Programming Interface.
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/ns-netioddk-_npi_registration_instance */
typedef GUID NPIID;
typedef const NPIID *PNPIID;

/* NPI_MODULEID_TYPE: MIT_GUID = 1, MIT_IF_LUID = 2.
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/ns-netioddk-_npi_moduleid */
typedef enum _NPI_MODULEID_TYPE { MIT_GUID = 1, MIT_IF_LUID = 2 } NPI_MODULEID_TYPE;

/* NPI_MODULEID { USHORT Length; NPI_MODULEID_TYPE Type; union { GUID Guid; LUID IfLuid; }; }
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/ns-netioddk-_npi_moduleid */
typedef struct _NPI_MODULEID
{
    USHORT Length;
    NPI_MODULEID_TYPE Type;
    union
    {
        GUID Guid;
        LUID IfLuid;
    } u;
} NPI_MODULEID, *PNPI_MODULEID;

/* NPI_REGISTRATION_INSTANCE { USHORT Version; USHORT Size; PNPIID NpiId; PNPI_MODULEID ModuleId;
 * ULONG Number; const VOID *NpiSpecificCharacteristics; }
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/ns-netioddk-_npi_registration_instance */
typedef struct _NPI_REGISTRATION_INSTANCE
{
    USHORT Version;
    USHORT Size;
    PNPIID NpiId;
    const NPI_MODULEID *ModuleId;
    ULONG Number;
    const void *NpiSpecificCharacteristics;
} NPI_REGISTRATION_INSTANCE, *PNPI_REGISTRATION_INSTANCE;

/* ClientAttachProvider (NPI_CLIENT_ATTACH_PROVIDER_FN)
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nc-netioddk-npi_client_attach_provider_fn */
typedef NTSTATUS (WINAPI *NPI_CLIENT_ATTACH_PROVIDER_FN)(HANDLE NmrBindingHandle, void *ClientContext,
        const NPI_REGISTRATION_INSTANCE *ProviderRegistrationInstance);
/* ClientDetachProvider (NPI_CLIENT_DETACH_PROVIDER_FN)
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nc-netioddk-npi_client_detach_provider_fn */
typedef NTSTATUS (WINAPI *NPI_CLIENT_DETACH_PROVIDER_FN)(void *ClientBindingContext);
/* ClientCleanupBindingContext (NPI_CLIENT_CLEANUP_BINDING_CONTEXT_FN)
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nc-netioddk-npi_client_cleanup_binding_context_fn */
typedef void (WINAPI *NPI_CLIENT_CLEANUP_BINDING_CONTEXT_FN)(void *ClientBindingContext);

/* NPI_CLIENT_CHARACTERISTICS { USHORT Version; USHORT Length; ClientAttachProvider;
 * ClientDetachProvider; ClientCleanupBindingContext; NPI_REGISTRATION_INSTANCE
 * ClientRegistrationInstance; }
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/ns-netioddk-_npi_client_characteristics */
typedef struct _NPI_CLIENT_CHARACTERISTICS
{
    USHORT Version;
    USHORT Length;
    NPI_CLIENT_ATTACH_PROVIDER_FN ClientAttachProvider;
    NPI_CLIENT_DETACH_PROVIDER_FN ClientDetachProvider;
    NPI_CLIENT_CLEANUP_BINDING_CONTEXT_FN ClientCleanupBindingContext;
    NPI_REGISTRATION_INSTANCE ClientRegistrationInstance;
} NPI_CLIENT_CHARACTERISTICS, *PNPI_CLIENT_CHARACTERISTICS;

/* The client-side NMR functions netio.sys exports (all PASSIVE_LEVEL except
 * NmrClientDetachProviderComplete, <= DISPATCH_LEVEL):
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nf-netioddk-nmrregisterclient
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nf-netioddk-nmrclientattachprovider
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nf-netioddk-nmrclientdetachprovidercomplete
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nf-netioddk-nmrderegisterclient
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nf-netioddk-nmrwaitforclientderegistercomplete */
NTSTATUS WINAPI NmrRegisterClient(const NPI_CLIENT_CHARACTERISTICS *ClientCharacteristics,
        void *ClientContext, HANDLE *NmrClientHandle);
NTSTATUS WINAPI NmrClientAttachProvider(HANDLE NmrBindingHandle, void *ClientBindingContext,
        const void *ClientDispatch, void **ProviderBindingContext, const void **ProviderDispatch);
void WINAPI NmrClientDetachProviderComplete(HANDLE NmrBindingHandle);
NTSTATUS WINAPI NmrDeregisterClient(HANDLE NmrClientHandle);
NTSTATUS WINAPI NmrWaitForClientDeregisterComplete(HANDLE NmrClientHandle);

/* ---- WSK items missing from Wine's ddk/wsk.h ---- */

/* WSK_PROVIDER_CHARACTERISTICS { USHORT HighestVersion; USHORT LowestVersion; }
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_provider_characteristics */
typedef struct _WSK_PROVIDER_CHARACTERISTICS
{
    USHORT HighestVersion;
    USHORT LowestVersion;
} WSK_PROVIDER_CHARACTERISTICS;

/* WSK_EVENT_CALLBACK_CONTROL { PNPIID NpiId; ULONG EventMask; }
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_event_callback_control */
typedef struct _WSK_EVENT_CALLBACK_CONTROL
{
    PNPIID NpiId;
    ULONG EventMask;
} WSK_EVENT_CALLBACK_CONTROL;

/* WskControlClient code enabling static event callbacks (Irp must be NULL).
 * https://learn.microsoft.com/windows-hardware/drivers/network/wsk-set-static-event-callbacks */
#define PROV_WSK_SET_STATIC_EVENT_CALLBACKS 7

/* Event mask bits, https://learn.microsoft.com/windows-hardware/drivers/network/so-wsk-event-callback
 * (values as in the WDK's wsk.h). */
#define PROV_WSK_EVENT_SEND_BACKLOG 0x00000010
#define PROV_WSK_EVENT_RECEIVE      0x00000040
#define PROV_WSK_EVENT_DISCONNECT   0x00000080
#define PROV_WSK_EVENT_ACCEPT       0x00000200
#define PROV_WSK_EVENT_DISABLE      0x80000000

/* WskDisconnect flag: abortive disconnect.
 * https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_disconnect */
#define PROV_WSK_FLAG_ABORTIVE 0x00000001

/* NPI_WSK_INTERFACE_ID = {2227E803-8D8B-11D4-ABAD-009027719E09}
 * https://learn.microsoft.com/windows-hardware/drivers/network/using-nmr-for-wsk-registration-and-unregistration */
static const GUID PROV_NPI_WSK_INTERFACE_ID =
    { 0x2227e803, 0x8d8b, 0x11d4, { 0xab, 0xad, 0x00, 0x90, 0x27, 0x71, 0x9e, 0x09 } };

/* ExAllocatePool2 flags (POOL_FLAGS), https://learn.microsoft.com/windows-hardware/drivers/kernel/pool_flags */
#define PROV_POOL_FLAG_UNINITIALIZED     0x0000000000000002ULL
#define PROV_POOL_FLAG_NON_PAGED         0x0000000000000040ULL
#define PROV_POOL_FLAG_NON_PAGED_EXECUTE 0x0000000000000080ULL
#define PROV_POOL_FLAG_PAGED             0x0000000000000100ULL

#endif
