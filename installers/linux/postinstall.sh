#!/bin/sh
# berth package post-install: prints where things are. It starts, enables and creates nothing.
echo "berth: installed /usr/bin/berth and the agent /usr/lib/berth/berth-agent."
echo "berth: first run (root): berth start, then berth pull busybox && berth run --rm busybox echo hi."
echo "berth: see /usr/share/doc/berth/README.installed"
exit 0
