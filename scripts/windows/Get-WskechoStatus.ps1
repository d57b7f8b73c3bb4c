<#
.SYNOPSIS
Shows the state of the wskecho driver: service, configuration, Parameters, listeners, signature.

.DESCRIPTION
Read-only: `sc.exe query` and `sc.exe qc`, the Root\wskecho device if there is one (installed
as a PnP device: its status and Device Manager problem code), the Parameters values, the TCP
listeners owned by the System process on the configured ports, the image's signature status,
and whether test signing is on. Does not need elevation except for the bcdedit line.

.EXAMPLE
.\Get-WskechoStatus.ps1
#>
[CmdletBinding()]
param()

. (Join-Path $PSScriptRoot 'Wskecho.Common.ps1')

$service = Get-WskechoService
if ($null -eq $service) {
    Write-Host 'wskecho is not installed (Install-Wskecho.ps1).'
    return
}
$null = Invoke-WskechoTool -FilePath 'sc.exe' -ArgumentList @('query', $WskechoService)
$null = Invoke-WskechoTool -FilePath 'sc.exe' -ArgumentList @('qc', $WskechoService)

$device = Get-WskechoDevice
if ($device) {
    Write-Host "Device $WskechoHardwareId ($($device.InstanceId)): status $($device.Status), problem code $(Get-WskechoDeviceProblem $device) (installed as a PnP device: the device holds the driver)"
} else {
    Write-Host "No $WskechoHardwareId device (installed as a service, or not installed)."
}

Write-Host "Parameters ($WskechoParametersKey):"
if (Test-Path -LiteralPath $WskechoParametersKey) {
    $values = Get-ItemProperty -LiteralPath $WskechoParametersKey
    foreach ($name in 'ListenAddresses', 'MaxConnections', 'BufferSize', 'MaxConnectionsPerAddress', 'IdleTimeout', 'NoDelay', 'PnpDevice') {
        $value = $values.PSObject.Properties[$name]
        $shown = if ($null -eq $value) { '(not set: the driver uses its default)' } else { $value.Value -join ', ' }
        Write-Host "  $name = $shown"
    }
} else {
    Write-Host '  (no Parameters key: the driver uses its defaults)'
}

$imagePath = (Get-ItemProperty -LiteralPath "HKLM:\SYSTEM\CurrentControlSet\Services\$WskechoService").ImagePath
$file = $imagePath -replace '^\\SystemRoot\\', "$env:SystemRoot\" -replace '^System32\\', "$env:SystemRoot\System32\" -replace '^\\\?\?\\', ''
if (Test-Path -LiteralPath $file) {
    Write-Host "Image $file : signature $(Get-WskechoSignatureText -Path $file)"
} else {
    Write-Host "Image $imagePath not found (error 2 on start)."
}

if ($service.Status -eq 'Running') {
    $listeners = @(Get-NetTCPConnection -State Listen -ErrorAction SilentlyContinue |
        Where-Object { $_.OwningProcess -eq 4 })
    Write-Host 'TCP listeners of the System process (PID 4):'
    $listeners | Sort-Object LocalPort |
        ForEach-Object { Write-Host ('  {0}:{1}' -f $_.LocalAddress, $_.LocalPort) }
    # Each configured endpoint, listening or not: a running driver serves at least one (a start
    # where none could be opened fails), but some may have failed (the driver's log says why).
    # A missing value means the driver's default, which is the INF's (tools/infcheck checks).
    $configured = @()
    $inf = Join-Path $PSScriptRoot 'wskecho.inf'
    if (Test-Path -LiteralPath $inf) {
        $configured = @((Get-WskechoInfDefaults -InfPath $inf)['ListenAddresses'].Value)
    }
    if ((Test-Path -LiteralPath $WskechoParametersKey) -and
        $null -ne (Get-ItemProperty -LiteralPath $WskechoParametersKey).PSObject.Properties['ListenAddresses']) {
        $configured = @((Get-ItemProperty -LiteralPath $WskechoParametersKey).ListenAddresses)
    }
    Write-Host 'Configured endpoints:'
    foreach ($endpoint in $configured) {
        if ($endpoint -notmatch '^\[?(?<address>[^\]]*?)\]?:(?<port>\d+)$') {
            Write-Host "  $endpoint : not an ADDR:PORT text (the driver would not have started)"
            continue
        }
        $address = $Matches.address
        $port = [int]$Matches.port
        $open = $listeners | Where-Object { $_.LocalPort -eq $port -and $_.LocalAddress -eq $address }
        $state = if ($open) { 'listening' } else { 'NOT listening: see the driver log (DbgView / WinDbg) for "listener ' + $endpoint + '"' }
        Write-Host "  $endpoint : $state"
    }
}

if (Test-WskechoAdministrator) {
    $testsigning = (& bcdedit.exe /enum '{current}' 2>$null) -match '^testsigning\s+Yes'
    Write-Host ('Test signing: {0}' -f $(if ($testsigning) { 'on' } else { 'off (sc start fails with 577)' }))
}
