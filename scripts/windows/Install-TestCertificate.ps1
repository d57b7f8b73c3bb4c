<#
.SYNOPSIS
Trusts (or stops trusting) the wskecho test certificate on this test machine.

.DESCRIPTION
Adds wskecho-test.cer, the self-signed certificate that signed wskecho.sys, to the local
machine's Trusted Root Certification Authorities (so the kernel accepts the test signature
once test signing is on) and Trusted Publishers (so pnputil installs without a prompt), with
`certutil -addstore -f`. -Remove deletes it from both stores again.
Only ever do this on a test machine: anything signed with this certificate's key is then
trusted there.

.PARAMETER CertificatePath
The certificate to trust. Default: wskecho-test.cer next to this script.

.PARAMETER Remove
Removes the certificate from both stores instead.

.EXAMPLE
.\Install-TestCertificate.ps1 -WhatIf

.EXAMPLE
.\Install-TestCertificate.ps1 -Remove
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [string]$CertificatePath = (Join-Path $PSScriptRoot 'wskecho-test.cer'),
    [switch]$Remove
)

. (Join-Path $PSScriptRoot 'Wskecho.Common.ps1')
Assert-WskechoAdministrator

if (-not (Test-Path -LiteralPath $CertificatePath -PathType Leaf)) {
    throw "Certificate $CertificatePath not found (the package ships wskecho-test.cer)."
}
$certificate = New-Object System.Security.Cryptography.X509Certificates.X509Certificate2 (Resolve-Path -LiteralPath $CertificatePath).Path
Write-Host "Certificate: $($certificate.Subject), thumbprint $($certificate.Thumbprint), valid until $($certificate.NotAfter)"

foreach ($store in 'Root', 'TrustedPublisher') {
    if ($Remove) {
        if ($PSCmdlet.ShouldProcess("LocalMachine\$store", "certutil -delstore $store $($certificate.SerialNumber)")) {
            $null = Invoke-WskechoTool -FilePath 'certutil.exe' -ArgumentList @('-delstore', $store, $certificate.SerialNumber)
        }
    } elseif ($PSCmdlet.ShouldProcess("LocalMachine\$store", "certutil -addstore -f $store $CertificatePath")) {
        $null = Invoke-WskechoTool -FilePath 'certutil.exe' -ArgumentList @('-addstore', '-f', $store, $CertificatePath)
    }
}
