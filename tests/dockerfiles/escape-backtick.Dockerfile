# escape=`
FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop';"]
RUN New-Item -ItemType Directory C:\app ; `
    Write-Host 'made C:\app'
WORKDIR C:\app
COPY app.ps1 C:\app\
ENV GREETING="hello world" `
    TARGET=C:\app
CMD ["powershell", "C:\\app\\app.ps1"]
