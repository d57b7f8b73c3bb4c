<#
.SYNOPSIS
Loads the wskecho driver (`sc.exe start wskecho`) and waits until it runs.

.DESCRIPTION
DriverEntry reads Parameters, registers with the NMR and opens the listening sockets. A
failure stops the script with the Win32 error and a hint (577 unsigned, 1275 blocked,
87 invalid parameter, 1060 not installed, ...; docs/troubleshooting.md).
Installed as a PnP device (Install-Wskecho.ps1 -Method Root), the driver needs no start: the
device loads it.

.PARAMETER TimeoutSeconds
How long to wait for RUNNING.

.EXAMPLE
.\Start-Wskecho.ps1 -WhatIf
#>
[CmdletBinding(SupportsShouldProcess)]
param([int]$TimeoutSeconds = 30)

. (Join-Path $PSScriptRoot 'Wskecho.Common.ps1')
Assert-WskechoAdministrator

if ($PSCmdlet.ShouldProcess($WskechoService, 'sc.exe start')) {
    $code = Invoke-WskechoTool -FilePath 'sc.exe' -ArgumentList @('start', $WskechoService) -Success 0, 1056
    if ($code -eq 1056) { Write-Host 'wskecho was already running.' }
    if (-not (Wait-WskechoServiceStatus -Status 'Running' -TimeoutSeconds $TimeoutSeconds)) {
        throw "wskecho did not reach RUNNING within $TimeoutSeconds s: run Get-WskechoStatus.ps1 and see docs/troubleshooting.md."
    }
    Write-Host 'wskecho is running. Try: Test-NetConnection 127.0.0.1 -Port 40007'
}
