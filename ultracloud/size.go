package ultracloud

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a number of bytes. In JSON it is either a number of bytes or a
// string with a binary suffix: "512M", "20G", "1.5T", "4096" (K, M, G, T are
// powers of 1024; an optional trailing "iB" or "B" is accepted).
type Size int64

// Common sizes.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

// ParseSize parses a size such as "512M" or "20GiB".
func ParseSize(s string) (Size, error) {
	orig := s
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimSuffix(s, "B"), "i")
	mult := Size(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K', 'k':
			mult = KiB
		case 'M', 'm':
			mult = MiB
		case 'G', 'g':
			mult = GiB
		case 'T', 't':
			mult = TiB
		}
		if mult != 1 {
			s = s[:n-1]
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Errorf("size %q: want a non-negative number with an optional K/M/G/T suffix, e.g. \"20G\"", orig)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q: too large", orig)
	}
	return Size(v), nil
}

// String prints the size with the largest exact binary suffix.
func (s Size) String() string {
	for _, u := range []struct {
		v Size
		s string
	}{{TiB, "T"}, {GiB, "G"}, {MiB, "M"}, {KiB, "K"}} {
		if s != 0 && s%u.v == 0 {
			return strconv.FormatInt(int64(s/u.v), 10) + u.s
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// MarshalJSON writes the size as a string such as "20G".
func (s Size) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON accepts a number of bytes or a string such as "20G".
func (s *Size) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		v, err := ParseSize(str)
		if err != nil {
			return err
		}
		*s = v
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("size %s: want bytes as an integer or a string such as \"20G\"", b)
	}
	if n < 0 {
		return fmt.Errorf("size %d: must not be negative", n)
	}
	*s = Size(n)
	return nil
}
