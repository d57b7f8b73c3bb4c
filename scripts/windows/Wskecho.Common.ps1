# Shared helpers of the wskecho test-machine scripts. Dot-sourced by each script; not a command
# on its own. Works in Windows PowerShell 5.1 and PowerShell 7.

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'

$script:WskechoService = 'wskecho'
$script:WskechoParametersKey = 'HKLM:\SYSTEM\CurrentControlSet\Services\wskecho\Parameters'
$script:WskechoHardwareId = 'Root\wskecho'

# Win32 errors that sc.exe, pnputil and devcon report, with what to do (docs/troubleshooting.md).
$script:WskechoErrorHints = @{
    2    = 'the driver file was not found: reinstall (Install-Wskecho.ps1) or check ImagePath with Get-WskechoStatus.ps1'
    5    = 'access denied: run from an elevated PowerShell (Run as administrator)'
    31   = 'DriverEntry failed: see the driver log (docs/windbg.md); an invalid Parameters value gives STATUS_INVALID_PARAMETER'
    87   = 'invalid parameter: a Parameters value is out of range or malformed (Set-WskechoParameters.ps1 -Reset restores defaults)'
    577  = 'Windows cannot verify the signature: enable test signing and reboot (Enable-TestSigning.ps1), install the test certificate (Install-TestCertificate.ps1)'
    1052 = 'the driver cannot be stopped with sc stop: if a Root\wskecho device exists (Install-Wskecho.ps1 -Method Root), the driver unloads only when the device is removed or disabled (Uninstall-Wskecho.ps1); otherwise retry and see docs/troubleshooting.md'
    1056 = 'already running'
    1058 = 'the service is disabled: sc.exe config wskecho start= demand'
    1060 = 'wskecho is not installed: run Install-Wskecho.ps1'
    1062 = 'not running'
    1072 = 'the service is marked for deletion: close Services/regedit/Process Explorer handles, or reboot, then retry'
    1073 = 'the service already exists: run Uninstall-Wskecho.ps1 first'
    1275 = 'the driver is blocked from loading: Secure Boot/HVCI/driver block list; see docs/troubleshooting.md'
    1450 = 'insufficient system resources: lower MaxConnections or BufferSize'
    10048 = 'the listen address is in use by another program: change ListenAddresses (Set-WskechoParameters.ps1)'
}

function Get-WskechoErrorHint {
    param([int]$Code)
    if ($script:WskechoErrorHints.ContainsKey($Code)) { return $script:WskechoErrorHints[$Code] }
    return "see 'net helpmsg $Code' and docs/troubleshooting.md"
}

function Test-WskechoAdministrator {
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object Security.Principal.WindowsPrincipal($identity)
    return $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}

# Fails unless elevated; a -WhatIf run only prints, so it is allowed without elevation.
function Assert-WskechoAdministrator {
    if ($WhatIfPreference) { return }
    if (-not (Test-WskechoAdministrator)) {
        throw 'This script changes drivers and services: run it from an elevated PowerShell (Run as administrator).'
    }
}

# Runs a native tool, echoing the command line and its output, and returns its exit code.
# Throws with a hint when the exit code is not in -Success.
function Invoke-WskechoTool {
    param(
        [Parameter(Mandatory)] [string]$FilePath,
        [string[]]$ArgumentList = @(),
        [int[]]$Success = @(0)
    )
    if (-not (Get-Command $FilePath -ErrorAction SilentlyContinue)) {
        throw "$FilePath was not found on PATH"
    }
    Write-Host ('> {0} {1}' -f $FilePath, ($ArgumentList -join ' '))
    # Windows PowerShell 5.1 turns a native tool's stderr into a terminating error under
    # 'Stop'; the exit code is what decides here.
    $saved = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    try {
        $output = & $FilePath @ArgumentList 2>&1
        $code = $LASTEXITCODE
    } finally {
        $ErrorActionPreference = $saved
    }
    foreach ($line in $output) { Write-Host ('  {0}' -f $line) }
    if ($Success -notcontains $code) {
        throw ('{0} failed with exit code {1}: {2}' -f $FilePath, $code, (Get-WskechoErrorHint $code))
    }
    return $code
}

# "Valid (CN=...)" for a file's Authenticode signature, "NotSigned (no signer)" and so on.
function Get-WskechoSignatureText {
    param([Parameter(Mandatory)] [string]$Path)
    $signature = Get-AuthenticodeSignature -LiteralPath $Path
    $signer = if ($null -ne $signature.SignerCertificate) { $signature.SignerCertificate.Subject } else { 'no signer' }
    return '{0} ({1})' -f $signature.Status, $signer
}

function Get-WskechoService {
    return Get-Service -Name $script:WskechoService -ErrorAction SilentlyContinue
}

# The present Root\wskecho device (installed as a PnP device), or $null. Get-PnpDevice is in
# the PnpDevice module of Windows 10/11.
function Get-WskechoDevice {
    return Get-PnpDevice -PresentOnly -ErrorAction SilentlyContinue |
        Where-Object { $_.HardwareID -contains $script:WskechoHardwareId } |
        Select-Object -First 1
}

# The device's Device Manager problem code (0 = none; 10 start failed, 31 AddDevice or driver
# load failed, 52 signature; docs/troubleshooting.md).
function Get-WskechoDeviceProblem {
    param([Parameter(Mandatory)] $Device)
    return $Device.ConfigManagerErrorCode
}

# Waits until the service reaches $Status or $TimeoutSeconds pass.
function Wait-WskechoServiceStatus {
    param([Parameter(Mandatory)] [string]$Status, [int]$TimeoutSeconds = 30)
    $deadline = (Get-Date).AddSeconds($TimeoutSeconds)
    while ((Get-Date) -lt $deadline) {
        $service = Get-WskechoService
        if ($null -ne $service -and $service.Status.ToString() -eq $Status) { return $true }
        Start-Sleep -Milliseconds 250
    }
    return $false
}

# The Parameters defaults written by the INF (one source of truth): the lines
#   HKR, Parameters, Name, 0x00010001, 1024
#   HKR, Parameters, Name, 0x00010000, "a", "b"
# of the INF next to the scripts.
function Get-WskechoInfDefaults {
    param([Parameter(Mandatory)] [string]$InfPath)
    $defaults = [ordered]@{}
    foreach ($line in Get-Content -LiteralPath $InfPath) {
        $text = ($line -split ';', 2)[0]
        if ($text -notmatch '^\s*HKR\s*,\s*Parameters\s*,\s*(\w+)\s*,\s*(0x[0-9A-Fa-f]+)\s*,(.*)$') { continue }
        $name = $Matches[1]
        $flags = [Convert]::ToUInt32($Matches[2], 16)
        $data = @([regex]::Matches($Matches[3], '"([^"]*)"|([^,\s]+)') | ForEach-Object {
                if ($_.Groups[1].Success) { $_.Groups[1].Value } else { $_.Groups[2].Value }
            })
        switch ($flags) {
            0x00010001 { $defaults[$name] = [pscustomobject]@{ Type = 'DWord'; Value = [uint32]$data[0] } }
            0x00010000 { $defaults[$name] = [pscustomobject]@{ Type = 'MultiString'; Value = [string[]]$data } }
            default { throw "Unexpected registry flags 0x$('{0:X8}' -f $flags) for $name in $InfPath" }
        }
    }
    if ($defaults.Count -eq 0) { throw "No Parameters defaults found in $InfPath" }
    return $defaults
}

# Writes Parameters values given as name -> { Type = 'DWord'|'MultiString'; Value }.
function Write-WskechoParameters {
    param([Parameter(Mandatory)] [System.Collections.IDictionary]$Values)
    if (-not (Test-Path -LiteralPath $script:WskechoParametersKey)) {
        $null = New-Item -Path $script:WskechoParametersKey -Force
    }
    foreach ($name in $Values.Keys) {
        $entry = $Values[$name]
        $null = New-ItemProperty -LiteralPath $script:WskechoParametersKey -Name $name -PropertyType $entry.Type -Value $entry.Value -Force
        Write-Host ('  {0} = {1} ({2})' -f $name, ($entry.Value -join ', '), $entry.Type)
    }
}

# The oemNN.inf names under which the driver store holds packages whose original name is $InfName.
function Get-WskechoPublishedInf {
    param([Parameter(Mandatory)] [string]$InfName)
    $saved = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    try { $lines = & pnputil.exe /enum-drivers 2>&1 } finally { $ErrorActionPreference = $saved }
    $published = @()
    $current = $null
    foreach ($line in $lines) {
        # "Published Name:  oem12.inf" then "Original Name:  wskecho.inf" (English output).
        if ("$line" -match '^\s*Published Name\s*:\s*(\S+)') { $current = $Matches[1] }
        elseif ("$line" -match '^\s*Original Name\s*:\s*(\S+)' -and $Matches[1] -ieq $InfName -and $null -ne $current) {
            $published += $current
        }
    }
    return $published
}
