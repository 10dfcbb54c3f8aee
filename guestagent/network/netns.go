package network

// NewNetNS creates a new, empty network namespace and keeps it alive by
// bind-mounting it onto path (a file created if missing; its directory must
// exist). The caller passes path to Attach and to the container runtime, and
// removes it with DeleteNetNS. The caller's own namespace is not changed.
func NewNetNS(path string) error { return newNetNS(path) }

// DeleteNetNS unmounts and removes a namespace file made by NewNetNS. A
// missing path is not an error. The namespace itself goes away once no
// process is left in it.
func DeleteNetNS(path string) error { return deleteNetNS(path) }
