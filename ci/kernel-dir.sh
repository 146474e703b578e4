#!/usr/bin/env bash
# Prints the cache directory of the test kernel for the current inputs (built or not).
source "$(dirname "$0")/lib.sh"
kernel_dir
