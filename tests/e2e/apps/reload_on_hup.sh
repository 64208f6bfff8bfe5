#!/bin/sh
# An application in POSIX shell that reloads on SIGHUP (hotconf.dev/signal: SIGHUP), as nginx,
# HAProxy or a daemon does: the sidecar has already swapped the files when the signal arrives.
# Each reload appends "<why> <value>" to $OUT; $OUT.ready says the trap is installed.
set -u
file="$HOTCONF_FILES_DIR/$CONFIGMAP/value"
load() {
    if [ -e "$file" ]; then printf '%s %s\n' "$1" "$(cat "$file")" >> "$OUT"; fi
}
trap 'load HUP' HUP
load start
: > "$OUT.ready"
# A trap runs only between commands: wait for a background sleep, which a signal interrupts.
while :; do sleep 1 & wait $!; done
