/* Shared declarations of the test provider's parts (see README.md). */
#ifndef WINE_PROVIDER_H
#define WINE_PROVIDER_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define WIN32_NO_STATUS
#include "windef.h"
#include "winbase.h"
#include "winternl.h"
#undef WIN32_NO_STATUS
#include "ntstatus.h"
#include "winsock2.h"
#include "ws2tcpip.h"
#include "winreg.h"
#include "ddk/wdm.h"
#include "ddk/wsk.h"
#include "nmr.h"

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

/* settings (registry, see README.md) */
struct settings
{
    DWORD fail_allocation;   /* 1-based index of the allocation to fail, 0 = none */
    DWORD attach_mode;       /* 0 = inside NmrRegisterClient, 1 = late (thread), 2 = never */
    DWORD attach_delay_ms;
    DWORD detach_after_ms;   /* provider-initiated detach this long after the first attach */
    DWORD reattach_after_ms;
    DWORD inline_completion;
    DWORD short_receive;     /* at most this many bytes per receive, 0 = unlimited */
    DWORD bind_failure;      /* the Nth WskBind fails (0 = none, 0xffffffff = all) */
    DWORD kill_listener;     /* the Nth connection makes its listener stop working (0 = none) */
    DWORD grace_ms;          /* how long to wait for open sockets / detach completion */
};

extern struct settings settings;

/* log.c-like helpers (verifier.c) */
void plog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void violation(const char *rule, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_raw(const char *text);
LONG violation_count(void);
BOOL in_driver_image(const void *p);

/* verifier.c: tracking of the driver's objects */
BOOL irp_is_driver_irp(IRP *irp);
BOOL irp_set_in_flight(IRP *irp, BOOL on, const char *op); /* FALSE when already in flight */
void irp_forget(IRP *irp);                                  /* freed by IoCompleteRequest */
BOOL mdl_is_driver_mdl(MDL *mdl);
void mdl_use(MDL *mdl, int delta);
void verifier_start_run(void);
void verifier_finish_run(const char *why);
void provider_reset(void);    /* wsk.c: forget the previous run's NMR/WSK state */
void provider_finish(void);   /* wsk.c: end-of-run checks */
void provider_entry_returned(NTSTATUS status);
void provider_unload_returned(void);

/* verifier.c: the WSK callback executing on this thread ("an IoCompletion routine",
 * "WskAcceptEvent"), NULL outside; callback_enter returns the previous one for callback_leave */
const char *callback_current(void);
const char *callback_enter(const char *what);
void callback_leave(const char *previous);

/* completion of a driver IRP (wsk.c) */
NTSTATUS submit_irp(IRP *irp, const char *op, int sock_id);
void complete_irp(IRP *irp, NTSTATUS status, ULONG_PTR information);

#endif
