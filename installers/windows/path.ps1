# berth installer helper: add a directory to, or remove it from, the machine-wide Path.
# Reads and writes the raw registry value so that %VAR% entries stay unexpanded and the value
# keeps its REG_EXPAND_SZ kind; compares entries case-insensitively, ignoring a trailing '\'.
# Usage: path.ps1 -Action add|remove -Dir "C:\Program Files\berth"
param(
    [Parameter(Mandatory = $true)][ValidateSet('add', 'remove')][string]$Action,
    [Parameter(Mandatory = $true)][string]$Dir
)
$ErrorActionPreference = 'Stop'
$sub = 'SYSTEM\CurrentControlSet\Control\Session Manager\Environment'
$key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey($sub, $true)
if ($null -eq $key) { Write-Error "cannot open HKLM\$sub"; exit 1 }
try {
    $old = [string]$key.GetValue('Path', '', [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
    $want = $Dir.TrimEnd('\')
    $parts = @($old -split ';' | Where-Object { $_ -ne '' -and $_.TrimEnd('\') -ine $want })
    if ($Action -eq 'add') { $parts += $want }
    $new = $parts -join ';'
    if ($new -ne $old) {
        $key.SetValue('Path', $new, [Microsoft.Win32.RegistryValueKind]::ExpandString)
        Write-Output "Path: ${Action}: $want"
    } else {
        Write-Output "Path: unchanged"
    }
} finally {
    $key.Close()
}
exit 0
