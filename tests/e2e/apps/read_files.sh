#!/bin/sh
# An application in POSIX shell that reads its config from the files the hotconf sidecar writes
# (hotconf.dev/files): it follows $HOTCONF_FILES_DIR/$CONFIGMAP/..data, the symlink the sidecar
# swaps in one rename, and reads the key through it, so it sees one whole revision at a time.
# Each value it takes is appended to $OUT (the test reads it); $OUT.ready says it has started.
set -u
dir="$HOTCONF_FILES_DIR/$CONFIGMAP"
seen=""
: > "$OUT.ready"
while :; do
    now=$(readlink "$dir/..data" 2>/dev/null) || now=""
    if [ -n "$now" ] && [ "$now" != "$seen" ]; then
        # The set may be replaced between readlink and cat: then read the next one.
        if value=$(cat "$dir/$now/value" 2>/dev/null); then
            printf '%s\n' "$value" >> "$OUT"
            seen=$now
        fi
    fi
    sleep 0.05
done
