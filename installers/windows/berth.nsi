; berth Windows installer (NSIS 3, built on Linux with makensis; see installers/build.sh).
;
; Installs berth.exe and berth-engine.exe (and the linux agent and VM image for the VM drivers)
; into "Program Files\berth", adds that directory to the system PATH, registers the Windows
; service "berth" and writes an uninstaller that undoes all three.
;
; The service runs `berth-engine.exe serve --pipe \\.\pipe\berth_engine`: the Windows engine
; (Windows containers through HCS) on a named pipe, data under %ProgramData%\berth. It is
; registered with start type "demand" (it needs the Containers feature and an HNS "nat"
; network, which not every machine has): start it with `sc.exe start berth`.
;
; Defines (makensis -D): VERSION (display version), VIVERSION (a.b.c.d), BERTH_EXE (path to
; berth.exe), BERTH_ENGINE_EXE (path to berth-engine.exe), OUTFILE; optional BERTH_AGENT
; (linux agent), VMDIR (VM image directory),
; README (README.md), SIGN_CMD (a command that signs the file given as its last argument in
; place; used for the uninstaller, which makensis writes while compiling).

Unicode true
ManifestDPIAware true
SetCompressor /SOLID lzma

!ifndef VERSION
  !error "define VERSION (makensis -DVERSION=...)"
!endif
!ifndef VIVERSION
  !define VIVERSION "0.0.0.0"
!endif
!ifndef BERTH_EXE
  !error "define BERTH_EXE (path to the windows/amd64 berth.exe)"
!endif
!ifndef BERTH_ENGINE_EXE
  !error "define BERTH_ENGINE_EXE (path to the windows/amd64 berth-engine.exe)"
!endif
!ifndef OUTFILE
  !define OUTFILE "berth-${VERSION}-windows-amd64-setup.exe"
!endif

!define SERVICE "berth"
!define SERVICE_EXE "berth-engine.exe"
!define SERVICE_CMD "serve --pipe \\.\pipe\berth_engine"
!define UNINSTKEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\berth"
!define APPKEY "Software\berth"
!define PS '"$SYSDIR\WindowsPowerShell\v1.0\powershell.exe" -NoProfile -NonInteractive -ExecutionPolicy Bypass -File'

!include "MUI2.nsh"
!include "LogicLib.nsh"
!include "x64.nsh"
!include "WinMessages.nsh"

Name "berth ${VERSION}"
OutFile "${OUTFILE}"
InstallDir "$PROGRAMFILES64\berth"
InstallDirRegKey HKLM "${APPKEY}" "InstallDir"
RequestExecutionLevel admin
ShowInstDetails show
ShowUninstDetails show

VIProductVersion "${VIVERSION}"
VIAddVersionKey /LANG=1033 "ProductName" "berth"
VIAddVersionKey /LANG=1033 "ProductVersion" "${VERSION}"
VIAddVersionKey /LANG=1033 "FileVersion" "${VERSION}"
VIAddVersionKey /LANG=1033 "FileDescription" "berth installer"
VIAddVersionKey /LANG=1033 "LegalCopyright" "berth developers"

!ifdef SIGN_CMD
  ; Sign the uninstaller while makensis writes it, so the installed uninstall.exe is signed too.
  !uninstfinalize '${SIGN_CMD} "%1"' = 0
!endif

!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Function .onInit
  ${IfNot} ${RunningX64}
    MessageBox MB_ICONSTOP "berth needs 64-bit Windows (amd64)." /SD IDOK
    Abort
  ${EndIf}
  SetRegView 64
FunctionEnd

Function un.onInit
  SetRegView 64
FunctionEnd

Section "berth" SecBerth
  SectionIn RO
  SetOutPath "$INSTDIR"

  ; An upgrade: stop the service before its binary is replaced (net stop waits until it has
  ; stopped; fails harmlessly when the service is absent or not running).
  nsExec::ExecToLog '"$SYSDIR\net.exe" stop ${SERVICE}'
  Pop $0

  File "/oname=berth.exe" "${BERTH_EXE}"
  File "/oname=${SERVICE_EXE}" "${BERTH_ENGINE_EXE}"
  File "/oname=path.ps1" "path.ps1"
!ifdef BERTH_AGENT
  ; The static linux/amd64 agent that runs inside the VM.
  File "/oname=berth-agent" "${BERTH_AGENT}"
!endif
!ifdef README
  File "/oname=README.md" "${README}"
!endif
!ifdef VMDIR
  SetOutPath "$INSTDIR\vm\amd64"
  File /r "${VMDIR}\*"
  SetOutPath "$INSTDIR"
!endif

  WriteUninstaller "$INSTDIR\uninstall.exe"

  ; PATH: a helper script edits the machine Path in the registry (NSIS strings stop at 1024
  ; characters, which would truncate a long Path) keeping its REG_EXPAND_SZ entries as they are.
  DetailPrint "Adding $INSTDIR to the system PATH"
  nsExec::ExecToLog '${PS} "$INSTDIR\path.ps1" -Action add -Dir "$INSTDIR"'
  Pop $0
  ${If} $0 != 0
    MessageBox MB_ICONEXCLAMATION "Could not add $INSTDIR to PATH (exit $0); add it by hand." /SD IDOK
  ${EndIf}
  SendMessage ${HWND_BROADCAST} ${WM_SETTINGCHANGE} 0 "STR:Environment" /TIMEOUT=5000

  ; The service: create it, or point an existing one at this binary.
  DetailPrint "Registering the service ${SERVICE}"
  nsExec::ExecToLog '"$SYSDIR\sc.exe" create ${SERVICE} binPath= "\"$INSTDIR\${SERVICE_EXE}\" ${SERVICE_CMD}" start= demand DisplayName= "berth engine"'
  Pop $0
  ${If} $0 != 0
    nsExec::ExecToLog '"$SYSDIR\sc.exe" config ${SERVICE} binPath= "\"$INSTDIR\${SERVICE_EXE}\" ${SERVICE_CMD}" start= demand DisplayName= "berth engine"'
    Pop $0
  ${EndIf}
  ${If} $0 != 0
    MessageBox MB_ICONEXCLAMATION "Could not register the service ${SERVICE} (exit $0)." /SD IDOK
  ${Else}
    nsExec::ExecToLog '"$SYSDIR\sc.exe" description ${SERVICE} "berth container engine on \\.\pipe\berth_engine"'
    Pop $0
  ${EndIf}

  WriteRegStr HKLM "${APPKEY}" "InstallDir" "$INSTDIR"
  WriteRegStr HKLM "${APPKEY}" "Version" "${VERSION}"
  WriteRegStr HKLM "${UNINSTKEY}" "DisplayName" "berth"
  WriteRegStr HKLM "${UNINSTKEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINSTKEY}" "Publisher" "berth developers"
  WriteRegStr HKLM "${UNINSTKEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINSTKEY}" "DisplayIcon" "$INSTDIR\berth.exe"
  WriteRegStr HKLM "${UNINSTKEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINSTKEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKLM "${UNINSTKEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINSTKEY}" "NoRepair" 1
SectionEnd

Section "Uninstall"
  DetailPrint "Removing the service ${SERVICE}"
  ; net stop waits until the engine has stopped, so that its binary can be deleted.
  nsExec::ExecToLog '"$SYSDIR\net.exe" stop ${SERVICE}'
  Pop $0
  nsExec::ExecToLog '"$SYSDIR\sc.exe" delete ${SERVICE}'
  Pop $0

  DetailPrint "Removing $INSTDIR from the system PATH"
  nsExec::ExecToLog '${PS} "$INSTDIR\path.ps1" -Action remove -Dir "$INSTDIR"'
  Pop $0
  SendMessage ${HWND_BROADCAST} ${WM_SETTINGCHANGE} 0 "STR:Environment" /TIMEOUT=5000

  Delete "$INSTDIR\berth.exe"
  Delete "$INSTDIR\${SERVICE_EXE}"
  Delete "$INSTDIR\berth-agent"
  Delete "$INSTDIR\README.md"
  Delete "$INSTDIR\path.ps1"
  RMDir /r "$INSTDIR\vm"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"

  DeleteRegKey HKLM "${UNINSTKEY}"
  DeleteRegKey HKLM "${APPKEY}"
SectionEnd
