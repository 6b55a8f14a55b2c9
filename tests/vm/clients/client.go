// A plain Go TCP client: net.Dial("tcp", ...), which asks for SOCK_STREAM|SOCK_NONBLOCK|
// SOCK_CLOEXEC. Built with CGO_ENABLED=0 (static), so no LD_PRELOAD reaches it. Same
// protocol and output as client.c. Usage: client ADDRESS PORT SIZE
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

const solMptcp, mptcpInfo = 284, 1

func main() {
	size, _ := strconv.Atoi(os.Args[3])
	conn, err := net.Dial("tcp", net.JoinHostPort(os.Args[1], os.Args[2]))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	raw, _ := conn.(*net.TCPConn).SyscallConn()
	protocol, infoErrno := 0, 0
	raw.Control(func(fd uintptr) {
		protocol, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PROTOCOL)
		info := make([]byte, 256)
		length := uint32(len(info))
		_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, solMptcp, mptcpInfo,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&length)), 0)
		infoErrno = int(errno)
	})
	block := make([]byte, size)
	for i := range block {
		block[i] = byte(i % 251)
	}
	if _, err := conn.Write(block); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	digest := make([]byte, 64)
	if _, err := io.ReadFull(conn, digest); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("{\"protocol\": %d, \"mptcp_info_errno\": %d, \"digest\": \"%s\"}\n",
		protocol, infoErrno, digest)
	io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	conn.Close()
}
