#!/bin/sh
# ForceCommand of the loopback SSH target: run the client's command where it cannot
# touch the real machine.
#
# Usage: sandbox.sh SANDBOX. Re-executes itself under `unshare --mount` and, in that
# private mount namespace, lays the sandbox over the paths the engine writes (/opt, /home,
# /tmp), a test /etc/os-release over the real one, and the stand-ins over apt-get,
# dpkg-query, systemctl and curl. The sandbox itself is mounted at /srv, so the stand-ins
# find their state even when the sandbox lives under the /tmp that gets covered.
set -eu

sandbox=$1

if [ "${SSHTARGET_INSIDE:-}" != 1 ]; then
    SSHTARGET_INSIDE=1 exec unshare --mount --propagation private /bin/sh "$0" "$@"
fi
unset SSHTARGET_INSIDE

if [ -z "${SSH_ORIGINAL_COMMAND:-}" ]; then
    echo "sshtarget: only commands are served, not interactive shells" >&2
    exit 1
fi

# Every command the server was asked to run, as tests check that no secret was on one.
printf '%s\n' "$SSH_ORIGINAL_COMMAND" >> "$sandbox/log/commands.log"

# /tmp last: the sandbox may itself live under /tmp.
mount --bind "$sandbox" /srv
mount --bind "$sandbox/opt" /opt
mount --bind "$sandbox/home" /home
mount --bind "$sandbox/etc/os-release" /etc/os-release
# systemd's unit folder, where the engine writes the hub's drop-in.
if [ -d /etc/systemd/system ]; then
    mount --bind "$sandbox/etc/systemd-system" /etc/systemd/system
else
    echo "sshtarget: this machine has no /etc/systemd/system to cover" >&2
    exit 1
fi
# New homes are made from /etc/skel: the server's own, in the sandbox.
mount --bind "$sandbox/etc/skel" /etc/skel
for program in apt-get dpkg-query systemctl curl; do
    if [ -e "/usr/bin/$program" ]; then
        mount --bind "$sandbox/bin/$program" "/usr/bin/$program"
    fi
done

# Block storage, for the tests that ask for it (they create $sandbox/devices): a private
# /mnt and /etc/fstab, attached volumes as files under /dev/disk/by-id (an overlay on
# /dev), and the mounts earlier commands made, made again: each command gets a new mount
# namespace, as a server mounts its fstab again at each boot.
if [ -d "$sandbox/devices" ]; then
    mount --bind "$sandbox/mnt" /mnt
    mount --bind "$sandbox/etc/fstab" /etc/fstab
    mount -t overlay overlay \
        -o "lowerdir=/dev,upperdir=$sandbox/devices/upper,workdir=$sandbox/devices/work" /dev
    if [ -f "$sandbox/state/mounts.list" ]; then
        while read -r source target; do
            mount --bind "$source" "$target"
        done < "$sandbox/state/mounts.list"
    fi
fi

# Paths of this machine a test lends the server (a real Python environment), bound where
# the test asks (lines "SOURCE TARGET" in lent-paths.list) before /tmp is covered, since
# the checkout they come from may itself live under /tmp.
if [ -f "$sandbox/lent-paths.list" ]; then
    while read -r source target; do
        mount --bind "$source" "$target"
    done < "$sandbox/lent-paths.list"
fi

mount --bind "$sandbox/tmp" /tmp

# Where a real program is missing there is nothing to cover; PATH finds the stand-in.
PATH=/srv/bin:$PATH
HOME=/srv/root
export PATH HOME
cd /srv/root
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
