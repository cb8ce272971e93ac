#!/usr/bin/env bash
# Installs what the `xmen sync` test needs (an sshd to start on 127.0.0.1, ssh, rsync) when it is missing.
# Run by tests/test_origin.py; needs root and apt-get (a developer's machine or CI). Exit 0 when all are there.
set -u
missing=0
for tool in /usr/sbin/sshd ssh ssh-keygen rsync; do
    command -v "$tool" >/dev/null 2>&1 || missing=1
done
if [ "$missing" = 1 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "sshd/ssh/rsync missing and cannot install them (not root, or no apt-get)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1
    apt-get install -y -qq --no-install-recommends openssh-server openssh-client rsync >/dev/null 2>&1 || exit 1
fi
# sshd started by root needs its privilege separation folder.
if [ "$(id -u)" = 0 ]; then
    mkdir -p /run/sshd && chmod 0755 /run/sshd
fi
exit 0
