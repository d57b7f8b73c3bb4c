/*
 * wtdevcon: a minimal devcon for the Wine test layer (setupapi / newdev device installation).
 *
 *   wtdevcon install <inf> <hardware id>   creates a root-enumerated device with that hardware
 *                                          id and installs the INF's driver for it
 *   wtdevcon remove <hardware id>          removes every device with that hardware id
 *
 * Calls as documented for device installation applications:
 * https://learn.microsoft.com/windows-hardware/drivers/install/using-device-installation-functions
 * (SetupDiCreateDeviceInfoW, SetupDiSetDeviceRegistryPropertyW, SetupDiCallClassInstaller with
 * DIF_REGISTERDEVICE / DIF_REMOVE, UpdateDriverForPlugAndPlayDevicesW).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "windef.h"
#include "winbase.h"
#include "winuser.h"
#include "winreg.h"
#include "setupapi.h"
#include "newdev.h"

static int install(const WCHAR *inf, const WCHAR *hwid)
{
    GUID guid;
    WCHAR class_name[64], ids[256];
    SP_DEVINFO_DATA dev = { sizeof(dev) };
    HDEVINFO set;
    BOOL reboot = FALSE;
    size_t len = wcslen(hwid);

    if (!SetupDiGetINFClassW(inf, &guid, class_name, ARRAYSIZE(class_name), NULL))
    {
        printf("wtdevcon: SetupDiGetINFClass failed: %lu\n", GetLastError());
        return 1;
    }
    set = SetupDiCreateDeviceInfoList(&guid, NULL);
    if (set == INVALID_HANDLE_VALUE)
    {
        printf("wtdevcon: SetupDiCreateDeviceInfoList failed: %lu\n", GetLastError());
        return 1;
    }
    if (!SetupDiCreateDeviceInfoW(set, class_name, &guid, NULL, NULL, DICD_GENERATE_ID, &dev))
    {
        printf("wtdevcon: SetupDiCreateDeviceInfo failed: %lu\n", GetLastError());
        return 1;
    }
    memset(ids, 0, sizeof(ids));
    memcpy(ids, hwid, len * sizeof(WCHAR));
    if (!SetupDiSetDeviceRegistryPropertyW(set, &dev, SPDRP_HARDWAREID, (BYTE *)ids, (len + 2) * sizeof(WCHAR)))
    {
        printf("wtdevcon: setting the hardware id failed: %lu\n", GetLastError());
        return 1;
    }
    if (!SetupDiCallClassInstaller(DIF_REGISTERDEVICE, set, &dev))
    {
        printf("wtdevcon: DIF_REGISTERDEVICE failed: %lu\n", GetLastError());
        return 1;
    }
    SetupDiDestroyDeviceInfoList(set);
    if (!UpdateDriverForPlugAndPlayDevicesW(NULL, hwid, inf, INSTALLFLAG_FORCE, &reboot))
    {
        printf("wtdevcon: UpdateDriverForPlugAndPlayDevices failed: %lu\n", GetLastError());
        return 1;
    }
    printf("wtdevcon: installed %ls for %ls\n", inf, hwid);
    return 0;
}

static int remove_devices(const WCHAR *hwid)
{
    SP_DEVINFO_DATA dev = { sizeof(dev) };
    HDEVINFO set = SetupDiGetClassDevsW(NULL, L"ROOT", NULL, DIGCF_ALLCLASSES);
    DWORD i, removed = 0;

    if (set == INVALID_HANDLE_VALUE)
    {
        printf("wtdevcon: SetupDiGetClassDevs failed: %lu\n", GetLastError());
        return 1;
    }
    for (i = 0; SetupDiEnumDeviceInfo(set, i, &dev); i++)
    {
        WCHAR ids[512];
        const WCHAR *p;
        memset(ids, 0, sizeof(ids));
        if (!SetupDiGetDeviceRegistryPropertyW(set, &dev, SPDRP_HARDWAREID, NULL, (BYTE *)ids, sizeof(ids) - 4, NULL))
            continue;
        for (p = ids; *p; p += wcslen(p) + 1)
        {
            if (wcsicmp(p, hwid)) continue;
            if (!SetupDiCallClassInstaller(DIF_REMOVE, set, &dev))
            {
                printf("wtdevcon: DIF_REMOVE failed: %lu\n", GetLastError());
                return 1;
            }
            removed++;
            break;
        }
    }
    SetupDiDestroyDeviceInfoList(set);
    printf("wtdevcon: removed %lu device(s) with hardware id %ls\n", removed, hwid);
    return removed ? 0 : 1;
}

int wmain(int argc, WCHAR **argv)
{
    if (argc == 4 && !wcscmp(argv[1], L"install")) return install(argv[2], argv[3]);
    if (argc == 3 && !wcscmp(argv[1], L"remove")) return remove_devices(argv[2]);
    printf("usage: wtdevcon install <inf> <hardware id> | remove <hardware id>\n");
    return 2;
}
