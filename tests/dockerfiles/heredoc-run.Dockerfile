# syntax=docker/dockerfile:1.4
FROM debian:bookworm
RUN <<EOF
set -e
apt-get update
apt-get install -y curl
EOF
RUN <<-EOT bash
	echo tabs are stripped
	echo "$HOME"
	EOT
RUN <<'EOF' sh
echo $NOT_EXPANDED
EOF
COPY <<EOF /etc/motd
Welcome to $HOSTNAME
EOF
RUN <<FILE1 cat > /file1 && <<FILE2 cat > /file2
first
FILE1
second
FILE2
RUN 3<<IN cat /proc/self/fd/3
fd three
IN
