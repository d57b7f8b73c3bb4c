<#
.SYNOPSIS
Turns Windows test signing on (or off) so that the test-signed wskecho.sys can load.

.DESCRIPTION
Runs `bcdedit /set testsigning on` (or `off` with -Off). Takes effect after a reboot; the
desktop then shows "Test Mode". Fails clearly when not elevated, when bcdedit fails, or when
Secure Boot is on (firmware Secure Boot makes Windows ignore the testsigning option: turn it
off in the firmware setup first).

.PARAMETER Off
Turns test signing off again.

.EXAMPLE
.\Enable-TestSigning.ps1 -WhatIf
Shows what would be done without changing anything.

.EXAMPLE
.\Enable-TestSigning.ps1; Restart-Computer
#>
[CmdletBinding(SupportsShouldProcess)]
param([switch]$Off)

. (Join-Path $PSScriptRoot 'Wskecho.Common.ps1')
Assert-WskechoAdministrator

$value = if ($Off) { 'off' } else { 'on' }
if (-not $Off) {
    $secureBoot = $false
    try { $secureBoot = Confirm-SecureBootUEFI } catch { $secureBoot = $false }  # legacy BIOS or unsupported
    if ($secureBoot) {
        throw 'Secure Boot is on: Windows ignores testsigning while it is. Turn Secure Boot off in the firmware setup, then run this again.'
    }
}
if ($PSCmdlet.ShouldProcess('boot configuration {current}', "bcdedit /set testsigning $value")) {
    $null = Invoke-WskechoTool -FilePath 'bcdedit.exe' -ArgumentList @('/set', 'testsigning', $value)
    Write-Host "Test signing is set to '$value'. Reboot for it to take effect (Restart-Computer)."
}
