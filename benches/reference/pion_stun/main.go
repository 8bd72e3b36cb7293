// The reference side of benches/ice.rs: pion/stun (Debian's golang-github-pion-stun-dev)
// encoding and decoding the same ICE connectivity check as Pamoja. Reads lines
// "encode N" or "decode N" on stdin, runs N operations, and prints the elapsed nanoseconds.
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pion/stun"
)

const pwd = "00112233445566778899aabb"

func check() *stun.Message {
	prio := make([]byte, 4)
	binary.BigEndian.PutUint32(prio, 1853817087)
	tie := make([]byte, 8)
	binary.BigEndian.PutUint64(tie, 0x0123456789abcdef)
	m, err := stun.Build(
		stun.TransactionID,
		stun.BindingRequest,
		stun.NewUsername("0a1b2c3d:4e5f6a7b"),
		stun.RawAttribute{Type: stun.AttrPriority, Value: prio},
		stun.RawAttribute{Type: stun.AttrICEControlling, Value: tie},
		stun.RawAttribute{Type: stun.AttrUseCandidate, Value: []byte{}},
		stun.NewShortTermIntegrity(pwd),
		stun.Fingerprint,
	)
	if err != nil {
		panic(err)
	}
	return m
}

func main() {
	wire := check().Raw
	integrity := stun.NewShortTermIntegrity(pwd)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) != 2 {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		start := time.Now()
		switch f[0] {
		case "encode":
			for i := 0; i < n; i++ {
				_ = check()
			}
		case "decode":
			m := new(stun.Message)
			for i := 0; i < n; i++ {
				m.Reset()
				m.Raw = append(m.Raw[:0], wire...)
				if err := m.Decode(); err != nil {
					panic(err)
				}
				if err := integrity.Check(m); err != nil {
					panic(err)
				}
				if err := stun.Fingerprint.Check(m); err != nil {
					panic(err)
				}
			}
		}
		fmt.Println(time.Since(start).Nanoseconds())
	}
}
