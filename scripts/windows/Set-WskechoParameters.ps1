<#
.SYNOPSIS
Sets wskecho's configuration under HKLM\SYSTEM\CurrentControlSet\Services\wskecho\Parameters.

.DESCRIPTION
The driver reads these values once, in DriverEntry: restart it (Stop-Wskecho.ps1,
Start-Wskecho.ps1) to apply them. Values are checked here against the driver's limits
(crates/wsk-client/src/config.rs); the driver checks them again and refuses to start on an invalid one
(sc start fails, error 87, and the log names the value).
  ListenAddresses  REG_MULTI_SZ  "ADDR:PORT" strings, IPv6 in brackets; default loopback only,
                                 127.0.0.1:40007, [::1]:40007 (0.0.0.0 / [::] = every network)
  MaxConnections   REG_DWORD     connections accepted at once; more are refused
  BufferSize       REG_DWORD     bytes of echo buffer per connection
  MaxConnectionsPerAddress REG_DWORD  connections one remote address may hold; 0 = no limit
  IdleTimeout      REG_DWORD     seconds without progress before a connection is closed
                                 abortively (silent or stalled peers); 0 = never
  NoDelay          REG_DWORD     1 = TCP_NODELAY on accepted connections, 0 = Nagle on
A value that is not given is left as it is. -Reset writes the defaults from wskecho.inf.

.PARAMETER ListenAddresses
Endpoints to listen on, e.g. '127.0.0.1:40007','[::1]:40007'.

.PARAMETER MaxConnections
Maximum simultaneous connections.

.PARAMETER BufferSize
Per-connection echo buffer in bytes.

.PARAMETER MaxConnectionsPerAddress
Maximum simultaneous connections from one remote address (0 = no limit).

.PARAMETER IdleTimeout
Seconds a connection may make no progress in either direction before it is closed
abortively (0 = never).

.PARAMETER NoDelay
1: TCP_NODELAY on accepted connections (no delayed-ACK stall per echo); 0: Nagle's algorithm on.

.PARAMETER Reset
Writes the INF defaults for all values (other parameters are then ignored).

.EXAMPLE
.\Set-WskechoParameters.ps1 -ListenAddresses '127.0.0.1:40007' -MaxConnections 64 -WhatIf

.EXAMPLE
.\Set-WskechoParameters.ps1 -ListenAddresses '0.0.0.0:40007','[::]:40007' -MaxConnectionsPerAddress 8

.EXAMPLE
.\Set-WskechoParameters.ps1 -IdleTimeout 30 -NoDelay 1

.EXAMPLE
.\Set-WskechoParameters.ps1 -Reset
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [string[]]$ListenAddresses,
    [Nullable[long]]$MaxConnections,
    [Nullable[long]]$BufferSize,
    [Nullable[long]]$MaxConnectionsPerAddress,
    [Nullable[long]]$IdleTimeout,
    [Nullable[long]]$NoDelay,
    [switch]$Reset
)

. (Join-Path $PSScriptRoot 'Wskecho.Common.ps1')
Assert-WskechoAdministrator

# The driver's limits (crates/wsk-client/src/config.rs).
$limits = @{
    ListenAddressesMax = 16
    MaxConnections     = @(1, 65536)
    BufferSize         = @(512, 1048576)
    MaxConnectionsPerAddress = @(0, 65536)
    IdleTimeout        = @(0, 86400)
    NoDelay            = @(0, 1)
}

function Test-ListenAddress([string]$Text) {
    if ($Text -notmatch '^(?<ip>\d{1,3}(\.\d{1,3}){3}|\[(?<ip6>[0-9A-Fa-f:.%\w]+)\]):(?<port>\d{1,5})$') { return $false }
    $ip = if ($Matches['ip6']) { $Matches['ip6'] } else { $Matches['ip'] }
    $address = $null
    if (-not [System.Net.IPAddress]::TryParse($ip, [ref]$address)) { return $false }
    if ($Matches['ip6'] -and $address.AddressFamily -ne 'InterNetworkV6') { return $false }
    $port = [int]$Matches['port']
    return $port -ge 1 -and $port -le 65535
}

function Assert-Range([string]$Name, [long]$Value) {
    $low, $high = $limits[$Name]
    if ($Value -lt $low -or $Value -gt $high) { throw "$Name = $Value is outside $low..$high." }
}

$values = [ordered]@{}
if ($Reset) {
    $values = Get-WskechoInfDefaults -InfPath (Join-Path $PSScriptRoot 'wskecho.inf')
} else {
    if ($PSBoundParameters.ContainsKey('ListenAddresses')) {
        if ($ListenAddresses.Count -lt 1 -or $ListenAddresses.Count -gt $limits.ListenAddressesMax) {
            throw "ListenAddresses takes 1..$($limits.ListenAddressesMax) entries."
        }
        foreach ($address in $ListenAddresses) {
            if (-not (Test-ListenAddress $address)) {
                throw "ListenAddresses: '$address' is not ADDR:PORT (IPv4 a.b.c.d:port or [IPv6]:port, port 1-65535)."
            }
        }
        $values['ListenAddresses'] = [pscustomobject]@{ Type = 'MultiString'; Value = [string[]]$ListenAddresses }
    }
    foreach ($name in 'MaxConnections', 'BufferSize', 'MaxConnectionsPerAddress', 'IdleTimeout', 'NoDelay') {
        $value = Get-Variable -Name $name -ValueOnly
        if ($null -ne $value) {
            Assert-Range $name $value
            $values[$name] = [pscustomobject]@{ Type = 'DWord'; Value = [uint32]$value }
        }
    }
}
if ($values.Count -eq 0) { throw 'Nothing to set: give -ListenAddresses, -MaxConnections, -BufferSize, -MaxConnectionsPerAddress, -IdleTimeout, -NoDelay or -Reset.' }

if ($PSCmdlet.ShouldProcess($WskechoParametersKey, "set $($values.Keys -join ', ')")) {
    Write-WskechoParameters -Values $values
    $service = Get-WskechoService
    if (Get-WskechoDevice) {
        Write-Host "wskecho serves a $WskechoHardwareId device: restart the device to apply (devcon disable $WskechoHardwareId; devcon enable $WskechoHardwareId)."
    } elseif ($null -ne $service -and $service.Status -eq 'Running') {
        Write-Host 'wskecho is running: restart it to apply (Stop-Wskecho.ps1; Start-Wskecho.ps1).'
    }
}
