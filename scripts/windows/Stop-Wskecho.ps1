<#
.SYNOPSIS
Unloads the wskecho driver (`sc.exe stop wskecho`) and waits until it is stopped.

.DESCRIPTION
Unload deregisters from the NMR; the driver closes every socket (connections abortively) and
returns once the WSK detach has completed, without waiting for remote peers. STOP_PENDING
that does not end means a detach that never completes: break in with WinDbg (docs/windbg.md).
Only for a service install: with a Root\wskecho device (Install-Wskecho.ps1 -Method Root) the
driver is a Plug and Play function driver, which sc stop cannot unload (error 1052); the
script then says so and stops. Remove or disable the device instead (Uninstall-Wskecho.ps1, or
devcon disable Root\wskecho / devcon enable Root\wskecho).

.PARAMETER TimeoutSeconds
How long to wait for STOPPED.

.EXAMPLE
.\Stop-Wskecho.ps1 -WhatIf
#>
[CmdletBinding(SupportsShouldProcess)]
param([int]$TimeoutSeconds = 30)

. (Join-Path $PSScriptRoot 'Wskecho.Common.ps1')
Assert-WskechoAdministrator

$device = Get-WskechoDevice
if ($device) {
    throw "A $WskechoHardwareId device ($($device.InstanceId)) holds the driver: sc stop cannot unload it. Use Uninstall-Wskecho.ps1, or devcon disable $WskechoHardwareId (docs/installing.md, PnP device install)."
}

if ($PSCmdlet.ShouldProcess($WskechoService, 'sc.exe stop')) {
    $code = Invoke-WskechoTool -FilePath 'sc.exe' -ArgumentList @('stop', $WskechoService) -Success 0, 1062
    if ($code -eq 1062) { Write-Host 'wskecho was not running.' }
    if (-not (Wait-WskechoServiceStatus -Status 'Stopped' -TimeoutSeconds $TimeoutSeconds)) {
        throw "wskecho did not reach STOPPED within $TimeoutSeconds s: the unload is stuck; see docs/windbg.md (Unload, NmrWaitForClientDeregisterComplete)."
    }
    Write-Host 'wskecho is stopped (driver unloaded).'
}
