//go:build !linux

package main

import "syscall"

// procAttr leaves the child in the benchmark's process group elsewhere.
// The proxy's memory is read from /proc, so the full benchmark runs on
// Linux only.
func procAttr() *syscall.SysProcAttr { return nil }
