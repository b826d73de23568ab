; Inno Setup 6 script: dist\BoxSeg\ (the PyInstaller one-folder build) -> dist\BoxSeg-<version>-Setup.exe
;
; Build the bundle first (pyinstaller ... packaging\boxseg.spec), then, from the repository root:
;     iscc /DMyAppVersion=0.1.0 packaging\windows\boxseg.iss
; (the release workflow passes the version of the installed package's metadata).
;
; Installs per user without administrator rights by default (the wizard offers "all users"), adds a
; Start-menu entry (and optionally a desktop icon), and registers BoxSeg for .nii, .nii.gz and .dcm
; files. Windows picks a file's type by its last extension only, so ".nii.gz" files are ".gz" files to
; the shell: BoxSeg is added to the "Open with" list of .gz files, never made their default.
; Windows 8 and later do not let an installer make itself the default program of a type: .nii and
; .dcm list BoxSeg under "Open with" and Windows offers it the first time such a file is opened.

#ifndef MyAppVersion
  #define MyAppVersion "0.0.0"
#endif
#define MyAppName "BoxSeg"
#define MyAppExeName "BoxSeg.exe"
#define RepoRoot "..\.."

[Setup]
; AppId identifies the application for upgrades and the uninstaller: never change it.
AppId={{EA2E1E2E-E06E-41C6-8E38-FD3779F73B56}
AppName={#MyAppName}
AppVersion={#MyAppVersion}
AppVerName={#MyAppName} {#MyAppVersion}
AppPublisher=BoxSeg contributors
DefaultDirName={autopf}\{#MyAppName}
DefaultGroupName={#MyAppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=commandline dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
ChangesAssociations=yes
OutputDir={#RepoRoot}\dist
OutputBaseFilename={#MyAppName}-{#MyAppVersion}-Setup
SetupIconFile={#RepoRoot}\assets\icon\boxseg.ico
UninstallDisplayIcon={app}\{#MyAppExeName}
UninstallDisplayName={#MyAppName} {#MyAppVersion}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "associate"; Description: "Open .nii, .nii.gz and .dcm files with {#MyAppName}"; GroupDescription: "File types:"

[Files]
Source: "{#RepoRoot}\dist\BoxSeg\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#MyAppName}"; Filename: "{app}\{#MyAppExeName}"
Name: "{autodesktop}\{#MyAppName}"; Filename: "{app}\{#MyAppExeName}"; Tasks: desktopicon

[Registry]
; ProgIDs: what BoxSeg calls the file types, their icon, and how it opens them (`BoxSeg.exe app PATH`).
Root: HKA; Subkey: "Software\Classes\BoxSeg.NIfTI"; ValueType: string; ValueName: ""; ValueData: "NIfTI image"; Flags: uninsdeletekey; Tasks: associate
Root: HKA; Subkey: "Software\Classes\BoxSeg.NIfTI\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\{#MyAppExeName},0"; Tasks: associate
Root: HKA; Subkey: "Software\Classes\BoxSeg.NIfTI\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#MyAppExeName}"" app ""%1"""; Tasks: associate
Root: HKA; Subkey: "Software\Classes\BoxSeg.DICOM"; ValueType: string; ValueName: ""; ValueData: "DICOM file"; Flags: uninsdeletekey; Tasks: associate
Root: HKA; Subkey: "Software\Classes\BoxSeg.DICOM\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\{#MyAppExeName},0"; Tasks: associate
Root: HKA; Subkey: "Software\Classes\BoxSeg.DICOM\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#MyAppExeName}"" app ""%1"""; Tasks: associate
; The extensions: BoxSeg in their "Open with" lists.
Root: HKA; Subkey: "Software\Classes\.nii\OpenWithProgids"; ValueType: string; ValueName: "BoxSeg.NIfTI"; ValueData: ""; Flags: uninsdeletevalue; Tasks: associate
Root: HKA; Subkey: "Software\Classes\.nii.gz\OpenWithProgids"; ValueType: string; ValueName: "BoxSeg.NIfTI"; ValueData: ""; Flags: uninsdeletevalue; Tasks: associate
Root: HKA; Subkey: "Software\Classes\.gz\OpenWithProgids"; ValueType: string; ValueName: "BoxSeg.NIfTI"; ValueData: ""; Flags: uninsdeletevalue; Tasks: associate
Root: HKA; Subkey: "Software\Classes\.dcm\OpenWithProgids"; ValueType: string; ValueName: "BoxSeg.DICOM"; ValueData: ""; Flags: uninsdeletevalue; Tasks: associate
; The application itself, for "Open with" and Default Programs.
Root: HKA; Subkey: "Software\Classes\Applications\{#MyAppExeName}"; ValueType: string; ValueName: "FriendlyAppName"; ValueData: "{#MyAppName}"; Flags: uninsdeletekey; Tasks: associate
Root: HKA; Subkey: "Software\Classes\Applications\{#MyAppExeName}\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#MyAppExeName}"" app ""%1"""; Tasks: associate
Root: HKA; Subkey: "Software\Classes\Applications\{#MyAppExeName}\SupportedTypes"; ValueType: string; ValueName: ".nii"; ValueData: ""; Tasks: associate
Root: HKA; Subkey: "Software\Classes\Applications\{#MyAppExeName}\SupportedTypes"; ValueType: string; ValueName: ".gz"; ValueData: ""; Tasks: associate
Root: HKA; Subkey: "Software\Classes\Applications\{#MyAppExeName}\SupportedTypes"; ValueType: string; ValueName: ".dcm"; ValueData: ""; Tasks: associate

[Run]
Filename: "{app}\{#MyAppExeName}"; Description: "{cm:LaunchProgram,{#MyAppName}}"; Flags: nowait postinstall skipifsilent
