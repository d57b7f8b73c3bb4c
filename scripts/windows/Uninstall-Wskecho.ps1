<#
.SYNOPSIS
Stops and removes the wskecho driver, whichever way it was installed.

.DESCRIPTION
1. Removes the root-enumerated device if there is one (devcon remove Root\wskecho, or
   pnputil /remove-device <instance ID> when devcon is not available): the Plug and Play
   manager removes the device object and then unloads the driver (installed as a PnP device;
   sc stop cannot).
2. Otherwise stops the service if it runs (sc.exe stop, installed as a service).
3. Deletes every driver-store package of wskecho.inf / wskecho-root.inf
   (pnputil /delete-driver oemNN.inf /uninstall), which also removes the service it created.
4. If the service is still there (installed with -Method Service), deletes it (sc.exe delete)
   and removes System32\drivers\wskecho.sys.
The Parameters key goes with the service. Error 1072 (marked for deletion) means a handle is
still open on the service: close Services.msc/regedit, or reboot.

.PARAMETER DevconPath
devcon.exe used to remove a root-enumerated device. Default: devcon.exe on PATH; without it,
pnputil /remove-device (Windows 10 2004 and later).

.EXAMPLE
.\Uninstall-Wskecho.ps1 -WhatIf
#>
[CmdletBinding(SupportsShouldProcess)]
param([string]$DevconPath = 'devcon.exe')

. (Join-Path $PSScriptRoot 'Wskecho.Common.ps1')
Assert-WskechoAdministrator

$device = Get-WskechoDevice
if ($device) {
    if ($PSCmdlet.ShouldProcess("$WskechoHardwareId ($($device.InstanceId))", 'remove the device')) {
        if (Get-Command $DevconPath -ErrorAction SilentlyContinue) {
            # devcon: 0 done, 1 done but reboot needed.
            $null = Invoke-WskechoTool -FilePath $DevconPath -ArgumentList @('remove', $WskechoHardwareId) -Success 0, 1
        } else {
            $null = Invoke-WskechoTool -FilePath 'pnputil.exe' -ArgumentList @('/remove-device', $device.InstanceId) -Success 0, 3010
        }
        # The driver unloads after its last device object is deleted.
        if (-not (Wait-WskechoServiceStatus -Status 'Stopped' -TimeoutSeconds 30)) {
            throw 'wskecho did not unload after the device was removed; not removing a loaded driver. See docs/troubleshooting.md.'
        }
    }
}

$service = Get-WskechoService
if ($null -ne $service -and $service.Status -ne 'Stopped') {
    if ($PSCmdlet.ShouldProcess($WskechoService, 'sc.exe stop')) {
        $null = Invoke-WskechoTool -FilePath 'sc.exe' -ArgumentList @('stop', $WskechoService) -Success 0, 1062
        if (-not (Wait-WskechoServiceStatus -Status 'Stopped' -TimeoutSeconds 30)) {
            throw 'wskecho did not stop; not removing a loaded driver. See docs/troubleshooting.md.'
        }
    }
}

foreach ($inf in 'wskecho.inf', 'wskecho-root.inf') {
    foreach ($published in Get-WskechoPublishedInf -InfName $inf) {
        if ($PSCmdlet.ShouldProcess($published, "pnputil /delete-driver /uninstall ($inf)")) {
            $null = Invoke-WskechoTool -FilePath 'pnputil.exe' -ArgumentList @('/delete-driver', $published, '/uninstall') -Success 0, 3010
        }
    }
}

if ($null -ne (Get-WskechoService)) {
    if ($PSCmdlet.ShouldProcess($WskechoService, 'sc.exe delete')) {
        $null = Invoke-WskechoTool -FilePath 'sc.exe' -ArgumentList @('delete', $WskechoService) -Success 0, 1072
    }
}
$copied = Join-Path $env:SystemRoot 'System32\drivers\wskecho.sys'
if (Test-Path -LiteralPath $copied) {
    if ($PSCmdlet.ShouldProcess($copied, 'Remove-Item')) {
        Remove-Item -LiteralPath $copied -Force
        Write-Host "Removed $copied"
    }
}
Write-Host 'wskecho is uninstalled (the test certificate stays: Install-TestCertificate.ps1 -Remove).'
