#!/usr/bin/env bash
# refresh.sh's old-kernel variant (vm_refresh_oldkernel_busybox): bookworm's
# 6.1 kernel, which has no mount beneath; see refresh.sh.
exec bash "$(dirname "$0")/refresh.sh" "${1:-busybox}" old-kernel
