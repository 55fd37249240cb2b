package main

import "syscall"

// procAttr puts a child in its own process group, so that Ctrl-C reaches
// only the benchmark, which then stops its children in order; and has the
// kernel kill the child if the benchmark dies without stopping it.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
