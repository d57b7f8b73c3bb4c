<#
.SYNOPSIS
Installs the wskecho driver from this package (it is not started: use Start-Wskecho.ps1).

.DESCRIPTION
Three ways, see docs/installing.md:
  -Method Inf      (default) the primitive-driver INF: `pnputil /add-driver wskecho.inf /install`
                   creates the demand-start kernel service wskecho and writes the Parameters
                   defaults. Needs Windows 10 1903+ and a signed catalog wskecho.cat next to
                   the INF (made on Windows with Inf2Cat + signtool; the Linux build cannot).
  -Method Service  no INF: copies wskecho.sys to System32\drivers, `sc.exe create` a kernel
                   service (demand start), writes the Parameters defaults read from wskecho.inf.
                   Needs only the test-signed wskecho.sys (no catalog).
  -Method Root     the root-enumerated device INF: `devcon install wskecho-root.inf Root\wskecho`
                   creates the Root\wskecho devnode, installs the INF on it and starts the
                   device, which loads the driver (no Start-Wskecho.ps1 needed). With
                   -UseDevgen: `devgen /add /bus ROOT /hardwareid Root\wskecho`, then
                   `pnputil /add-driver wskecho-root.inf /install`. Needs devcon or devgen (WDK)
                   and wskecho.cat. The driver then unloads only when the device is removed
                   or disabled (Uninstall-Wskecho.ps1), not with sc stop.
Each step prints the command it runs; a failing exit code stops the script with a hint.
Prerequisites: Enable-TestSigning.ps1 (and a reboot), Install-TestCertificate.ps1.

.PARAMETER Method
Inf, Service or Root.

.PARAMETER PackagePath
Folder with wskecho.sys and the INF files. Default: this script's folder.

.PARAMETER DevconPath
devcon.exe to use for -Method Root. Default: devcon.exe on PATH.

.PARAMETER UseDevgen
-Method Root without devcon: devgen.exe (WDK) creates the devnode, pnputil installs the INF.

.PARAMETER DevgenPath
devgen.exe to use with -UseDevgen. Default: devgen.exe on PATH.

.EXAMPLE
.\Install-Wskecho.ps1 -Method Service -WhatIf

.EXAMPLE
.\Install-Wskecho.ps1; .\Start-Wskecho.ps1

.EXAMPLE
.\Install-Wskecho.ps1 -Method Root -DevconPath 'C:\Program Files (x86)\Windows Kits\10\Tools\10.0.22621.0\x64\devcon.exe'
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [ValidateSet('Inf', 'Service', 'Root')] [string]$Method = 'Inf',
    [string]$PackagePath = $PSScriptRoot,
    [string]$DevconPath = 'devcon.exe',
    [switch]$UseDevgen,
    [string]$DevgenPath = 'devgen.exe'
)

. (Join-Path $PSScriptRoot 'Wskecho.Common.ps1')
Assert-WskechoAdministrator

function Assert-PackageFile([string]$Name, [string]$Why) {
    $path = Join-Path $PackagePath $Name
    if (-not (Test-Path -LiteralPath $path -PathType Leaf)) { throw "$path not found: $Why" }
    return (Resolve-Path -LiteralPath $path).Path
}

$sys = Assert-PackageFile 'wskecho.sys' 'the package is incomplete'
Write-Host "wskecho.sys signature: $(Get-WskechoSignatureText -Path $sys)"
if ((Get-AuthenticodeSignature -LiteralPath $sys).Status -ne 'Valid') {
    Write-Warning 'The signature is not trusted here: run Install-TestCertificate.ps1 first, or sc start will fail with 577.'
}
if ($null -ne (Get-WskechoService)) {
    throw "Service $WskechoService already exists (error 1073): run Uninstall-Wskecho.ps1 first."
}

switch ($Method) {
    'Inf' {
        $inf = Assert-PackageFile 'wskecho.inf' 'the package is incomplete'
        $null = Assert-PackageFile 'wskecho.cat' 'pnputil needs a signed catalog; create it with Inf2Cat + signtool (docs/installing.md), or use -Method Service'
        if ($PSCmdlet.ShouldProcess($inf, 'pnputil /add-driver /install')) {
            # 3010: installed, a reboot completes it. 259 (no more items): staged, but nothing
            # was installed on a device - expected for an INF without devices; whether the
            # service exists is checked below.
            $null = Invoke-WskechoTool -FilePath 'pnputil.exe' -ArgumentList @('/add-driver', $inf, '/install') -Success 0, 259, 3010
            if ($null -eq (Get-WskechoService)) {
                Write-Host 'pnputil created no service; processing DefaultInstall through setupapi (routed to DiInstallDriver on 1903+).'
                $null = Invoke-WskechoTool -FilePath 'rundll32.exe' -ArgumentList @('setupapi.dll,InstallHinfSection', 'DefaultInstall.NTamd64', '132', $inf)
            }
            if ($null -eq (Get-WskechoService)) {
                throw 'No wskecho service after installing the INF: see C:\Windows\INF\setupapi.dev.log and docs/troubleshooting.md.'
            }
        }
    }
    'Service' {
        $inf = Assert-PackageFile 'wskecho.inf' 'the Parameters defaults are read from it'
        $defaults = Get-WskechoInfDefaults -InfPath $inf
        $target = Join-Path $env:SystemRoot 'System32\drivers\wskecho.sys'
        if ($PSCmdlet.ShouldProcess($target, "copy $sys")) {
            Copy-Item -LiteralPath $sys -Destination $target -Force
            Write-Host "Copied $sys to $target"
        }
        $arguments = @('create', $WskechoService, 'type=', 'kernel', 'start=', 'demand', 'error=', 'normal',
            'binPath=', '\SystemRoot\System32\drivers\wskecho.sys', 'DisplayName=', 'wskecho WSK echo server')
        if ($PSCmdlet.ShouldProcess($WskechoService, "sc.exe $($arguments -join ' ')")) {
            $null = Invoke-WskechoTool -FilePath 'sc.exe' -ArgumentList $arguments
        }
        if ($PSCmdlet.ShouldProcess($WskechoParametersKey, 'write the INF defaults')) {
            Write-WskechoParameters -Values $defaults
        }
    }
    'Root' {
        $inf = Assert-PackageFile 'wskecho-root.inf' 'the package is incomplete'
        $null = Assert-PackageFile 'wskecho.cat' 'device installation needs a signed catalog (docs/installing.md)'
        if (Get-WskechoDevice) {
            throw "A $WskechoHardwareId device already exists: run Uninstall-Wskecho.ps1 first."
        }
        if (-not $UseDevgen) {
            if ($PSCmdlet.ShouldProcess($WskechoHardwareId, "devcon install $inf")) {
                # devcon: 0 done, 1 done but reboot needed, 2 failed, 3 usage error.
                $null = Invoke-WskechoTool -FilePath $DevconPath -ArgumentList @('install', $inf, $WskechoHardwareId) -Success 0, 1
            }
        } else {
            if ($PSCmdlet.ShouldProcess($WskechoHardwareId, 'devgen /add /bus ROOT')) {
                $null = Invoke-WskechoTool -FilePath $DevgenPath -ArgumentList @('/add', '/bus', 'ROOT', '/hardwareid', $WskechoHardwareId)
            }
            if ($PSCmdlet.ShouldProcess($inf, 'pnputil /add-driver /install')) {
                $null = Invoke-WskechoTool -FilePath 'pnputil.exe' -ArgumentList @('/add-driver', $inf, '/install') -Success 0, 3010
            }
        }
        if (-not $WhatIfPreference) {
            $device = Get-WskechoDevice
            if ($null -eq $device) {
                throw "No $WskechoHardwareId device after the install: see C:\Windows\INF\setupapi.dev.log and docs/troubleshooting.md."
            }
            Write-Host "Device $($device.InstanceId): status $($device.Status), problem $(Get-WskechoDeviceProblem $device)"
            if ($device.Status -ne 'OK') {
                Write-Warning 'The device did not start: see docs/troubleshooting.md (Device Manager codes 10, 31, 52).'
            }
        }
    }
}
if ($Method -eq 'Root') {
    Write-Host 'Installed (Root): the device started the driver. Unload: .\Uninstall-Wskecho.ps1 (sc stop cannot unload it).'
} else {
    Write-Host "Installed ($Method). Next: .\Start-Wskecho.ps1"
}
