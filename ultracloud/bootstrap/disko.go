package bootstrap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode/utf16"

	"github.com/photoncloud/testkit/ultracloud"
)

// ErrPlan: a DiskoPlan that cannot be parsed, is invalid, or does not fit.
var ErrPlan = errors.New("disko plan")

// Content is what a partition (or disk) holds: disko's `content`.
type Content struct {
	// Type is disko's content type: filesystem, swap, luks, lvm_pv, zfs,
	// btrfs, mdraid, bcachefs, gpt, table, …
	Type string `json:"type"`
	// Format is the filesystem (vfat, ext4, …) of a "filesystem" content.
	Format       string   `json:"format,omitempty"`
	Mountpoint   string   `json:"mountpoint,omitempty"`
	MountOptions []string `json:"mountOptions,omitempty"`
	ExtraArgs    []string `json:"extraArgs,omitempty"`
}

// Label returns the filesystem label set through extraArgs (`-L x` for
// ext4, `-n x` for vfat), or "".
func (c *Content) Label() string {
	if c == nil {
		return ""
	}
	flag := "-L"
	if c.Format == "vfat" {
		flag = "-n"
	}
	for i := 0; i+1 < len(c.ExtraArgs); i++ {
		if c.ExtraArgs[i] == flag {
			return c.ExtraArgs[i+1]
		}
	}
	return ""
}

// Partition is one GPT partition of a plan, in disko's terms.
type Partition struct {
	// Name is the key of the partition in disko's `partitions`.
	Name string `json:"name"`
	// Index is its partition number (1-based), disko's `_index`.
	Index int `json:"index"`
	// Label is the GPT partition name (default disk-<disk>-<name>).
	Label string `json:"label"`
	// Type is the sgdisk type code (EF00, 8300, …) or a GUID.
	Type string `json:"type"`
	// TypeGUID is Type resolved to a GUID.
	TypeGUID string `json:"typeGUID"`
	// Size is disko's size ("512M", "100%", …); Start and End are sgdisk
	// start/end expressions ("0", "+512M", "-0", "1G").
	Size  string `json:"size,omitempty"`
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
	// Priority orders creation (lower first), as disko does.
	Priority int `json:"priority"`
	// Alignment is disko's `alignment` in sectors (0: sgdisk's 2048).
	Alignment  int      `json:"alignment,omitempty"`
	UUID       string   `json:"uuid,omitempty"`
	Attributes []int    `json:"attributes,omitempty"`
	Content    *Content `json:"content,omitempty"`
	// Path is the partition's JSON path in the plan, for messages.
	Path string `json:"path"`
}

// AttributeBits are the partition's GPT attributes as the 64-bit field
// (`sgdisk --attributes=N:set:BIT` for each of Attributes).
func (p Partition) AttributeBits() uint64 {
	var bits uint64
	for _, b := range p.Attributes {
		if b >= 0 && b < 64 {
			bits |= 1 << b
		}
	}
	return bits
}

// Nodev is a top-level disko `nodev` entry: a filesystem without a disk
// (tmpfs on /, …). Nothing to partition; the installed system mounts it.
type Nodev struct {
	Name       string   `json:"name"`
	FSType     string   `json:"fsType"`
	Mountpoint string   `json:"mountpoint,omitempty"`
	Options    []string `json:"mountOptions,omitempty"`
	Path       string   `json:"path"`
}

// Disk is one disk of a plan.
type Disk struct {
	Name      string          `json:"name"`
	Device    string          `json:"device"`
	ImageSize ultracloud.Size `json:"imageSize,omitempty"`
	// Table is the content type of the disk ("gpt").
	Table      string      `json:"table"`
	Partitions []Partition `json:"partitions"`
	Path       string      `json:"path"`
}

// Unsupported is content this release parses but cannot apply in-process.
type Unsupported struct {
	Type string `json:"type"`
	Path string `json:"path"`
}

func (u Unsupported) String() string {
	return "unsupported: " + u.Type + " at " + u.Path + " (Apply cannot create it; Verify recognises it; real images run real disko)"
}

// DiskoPlan is a machine's disk layout, parsed from what
// `nix eval --json .#nixosConfigurations.<host>.config.disko.devices`
// prints.
type DiskoPlan struct {
	Disks       []Disk        `json:"disks"`
	Unsupported []Unsupported `json:"unsupported,omitempty"`
	// Nodev are the plan's disk-less filesystems, reported, not applied.
	Nodev []Nodev `json:"nodev,omitempty"`
}

// Disk returns the disk called name.
func (p *DiskoPlan) Disk(name string) (*Disk, bool) {
	for i := range p.Disks {
		if p.Disks[i].Name == name {
			return &p.Disks[i], true
		}
	}
	return nil, false
}

// DiskoJSONApply is the Nix function that makes a flake's evaluated
// `config.disko.devices` printable as JSON: plain `nix eval --json` fails
// with "cannot convert a function to JSON" (disko's _meta, _pkgs,
// _packages, _scripts, _create, … are functions). It drops functions and
// internal `_` attributes (keeping `_index`, which ParsePlan reads) and
// prints derivations as their store paths:
//
//	nix eval --json FLAKE#nixosConfigurations.HOST.config.disko.devices --apply "$(ultracloud disko apply-expr)"
//
// `ultracloud disko from-flake FLAKE#HOST` runs exactly that.
const DiskoJSONApply = `let
  clean = v:
    if builtins.isFunction v then null
    else if builtins.isAttrs v && (v.type or null) == "derivation" then v.outPath
    else if builtins.isAttrs v then
      builtins.listToAttrs (builtins.concatMap (n:
        let x = v.${n}; in
        if (builtins.substring 0 1 n == "_" && n != "_index") || builtins.isFunction x then [ ]
        else [ { name = n; value = clean x; } ]) (builtins.attrNames v))
    else if builtins.isList v then map clean v
    else v;
in clean`

// Supported content types.
var applicable = map[string]bool{"filesystem": true, "swap": true}
var formats = map[string]bool{"vfat": true, "ext4": true}

// Known disko content types (others are parse errors).
var knownContent = []string{"filesystem", "swap", "luks", "lvm_pv", "zfs", "btrfs", "mdraid", "bcachefs", "gpt", "table"}

type rawDevices struct {
	Disk  map[string]json.RawMessage `json:"disk"`
	MDADM map[string]json.RawMessage `json:"mdadm"`
	LVMVG map[string]json.RawMessage `json:"lvm_vg"`
	ZPool map[string]json.RawMessage `json:"zpool"`
	Nodev map[string]json.RawMessage `json:"nodev"`
	// bcachefs_filesystems: an attrset, or [] when empty.
	Bcachefs json.RawMessage            `json:"bcachefs_filesystems"`
	Extras   map[string]json.RawMessage `json:"-"`
}

type rawDisk struct {
	Name      string          `json:"name"`
	Device    string          `json:"device"`
	Type      string          `json:"type"`
	ImageSize json.RawMessage `json:"imageSize"`
	Content   json.RawMessage `json:"content"`
}

type rawContent struct {
	Type         string          `json:"type"`
	Format       string          `json:"format"`
	Mountpoint   *string         `json:"mountpoint"`
	MountOptions []string        `json:"mountOptions"`
	ExtraArgs    []string        `json:"extraArgs"`
	Partitions   json.RawMessage `json:"partitions"`
}

type rawPartition struct {
	Name       string          `json:"name"`
	Label      *string         `json:"label"`
	Type       *string         `json:"type"`
	Size       json.RawMessage `json:"size"`
	Start      json.RawMessage `json:"start"`
	End        json.RawMessage `json:"end"`
	Priority   *int            `json:"priority"`
	Alignment  *int            `json:"alignment"`
	Index      *int            `json:"_index"`
	UUID       *string         `json:"uuid"`
	Attributes []int           `json:"attributes"`
	Hybrid     json.RawMessage `json:"hybrid"`
	Content    json.RawMessage `json:"content"`
}

// stringish accepts a JSON string or number ("512M", 0, null).
func stringish(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), nil
	}
	return "", fmt.Errorf("want a string or number, got %s", raw)
}

// ParsePlan parses disko's JSON (the devices attrset, or an object holding
// it under "devices"). Keys disko adds when evaluated (_meta, _index, …)
// are accepted; content this release cannot apply is listed in Unsupported.
// It does not validate; see Validate.
func ParsePlan(data []byte) (*DiskoPlan, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object: %v", ErrPlan, err)
	}
	if dev, ok := probe["devices"]; ok && probe["disk"] == nil {
		data = dev
	}
	var raw rawDevices
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPlan, err)
	}
	p := &DiskoPlan{}
	for _, kind := range []struct {
		name string
		m    map[string]json.RawMessage
	}{{"mdadm", raw.MDADM}, {"lvm_vg", raw.LVMVG}, {"zpool", raw.ZPool}} {
		for _, k := range sortedKeys(kind.m) {
			p.Unsupported = append(p.Unsupported, Unsupported{Type: kind.name, Path: kind.name + "." + k})
		}
	}
	var bcachefs map[string]json.RawMessage
	if json.Unmarshal(raw.Bcachefs, &bcachefs) == nil {
		for _, k := range sortedKeys(bcachefs) {
			p.Unsupported = append(p.Unsupported, Unsupported{Type: "bcachefs_filesystems", Path: "bcachefs_filesystems." + k})
		}
	}
	for _, k := range sortedKeys(raw.Nodev) {
		var n struct {
			FSType       string   `json:"fsType"`
			Mountpoint   *string  `json:"mountpoint"`
			MountOptions []string `json:"mountOptions"`
		}
		if err := json.Unmarshal(raw.Nodev[k], &n); err != nil {
			return nil, fmt.Errorf("%w: nodev.%s: %v", ErrPlan, k, err)
		}
		nd := Nodev{Name: k, FSType: n.FSType, Mountpoint: k, Options: n.MountOptions, Path: "nodev." + k}
		if n.Mountpoint != nil {
			nd.Mountpoint = *n.Mountpoint
		}
		p.Nodev = append(p.Nodev, nd)
	}
	for _, name := range sortedKeys(raw.Disk) {
		path := "disk." + name
		var rd rawDisk
		if err := json.Unmarshal(raw.Disk[name], &rd); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrPlan, path, err)
		}
		d := Disk{Name: name, Device: rd.Device, Path: path}
		if s, err := stringish(rd.ImageSize); err != nil {
			return nil, fmt.Errorf("%w: %s.imageSize: %v", ErrPlan, path, err)
		} else if s != "" {
			sz, err := ultracloud.ParseSize(s)
			if err != nil {
				return nil, fmt.Errorf("%w: %s.imageSize: %v", ErrPlan, path, err)
			}
			d.ImageSize = sz
		}
		var rc rawContent
		if len(rd.Content) > 0 {
			if err := json.Unmarshal(rd.Content, &rc); err != nil {
				return nil, fmt.Errorf("%w: %s.content: %v", ErrPlan, path, err)
			}
		}
		d.Table = rc.Type
		switch rc.Type {
		case "gpt":
			label := name // disko names partitions after disk.<key>.name
			if rd.Name != "" {
				label = rd.Name
			}
			parts, err := parsePartitions(label, path+".content.partitions", rc.Partitions, p)
			if err != nil {
				return nil, err
			}
			d.Partitions = parts
		case "":
			return nil, fmt.Errorf("%w: %s.content.type missing; want gpt", ErrPlan, path)
		default:
			if !slices.Contains(knownContent, rc.Type) {
				return nil, fmt.Errorf("%w: %s.content.type %q is not a disko content type", ErrPlan, path, rc.Type)
			}
			p.Unsupported = append(p.Unsupported, Unsupported{Type: rc.Type, Path: path + ".content"})
		}
		p.Disks = append(p.Disks, d)
	}
	return p, nil
}

func parsePartitions(disk, path string, raw json.RawMessage, p *DiskoPlan) ([]Partition, error) {
	var byName map[string]rawPartition
	var list []rawPartition
	keys := []string{}
	if err := json.Unmarshal(raw, &byName); err == nil {
		keys = sortedKeys(byName)
		for _, k := range keys {
			rp := byName[k]
			if rp.Name == "" {
				rp.Name = k
			}
			list = append(list, rp)
		}
	} else if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%w: %s: want an attrset or list of partitions: %v", ErrPlan, path, err)
	}
	var out []Partition
	for i, rp := range list {
		pp := fmt.Sprintf("%s[%d]", path, i)
		if len(keys) > 0 {
			pp = path + "." + keys[i]
		}
		part := Partition{Name: rp.Name, Path: pp, Type: "8300", Attributes: rp.Attributes}
		var err error
		if part.Size, err = stringish(rp.Size); err != nil {
			return nil, fmt.Errorf("%w: %s.size: %v", ErrPlan, pp, err)
		}
		if part.Start, err = stringish(rp.Start); err != nil {
			return nil, fmt.Errorf("%w: %s.start: %v", ErrPlan, pp, err)
		}
		if part.End, err = stringish(rp.End); err != nil {
			return nil, fmt.Errorf("%w: %s.end: %v", ErrPlan, pp, err)
		}
		var rc rawContent
		hasContent := len(rp.Content) > 0 && string(rp.Content) != "null"
		if hasContent {
			if err := json.Unmarshal(rp.Content, &rc); err != nil {
				return nil, fmt.Errorf("%w: %s.content: %v", ErrPlan, pp, err)
			}
		}
		// disko's defaults: swap content is 8200, the rest 8300; the label
		// is disk-<disk.name>-<name>, hashed when longer than 36.
		if rp.Type != nil {
			part.Type = *rp.Type
		} else if rc.Type == "swap" {
			part.Type = "8200"
		}
		part.TypeGUID = typeGUID(part.Type)
		part.Label = defaultLabel(disk, part.Name)
		if rp.Label != nil {
			part.Label = *rp.Label
		}
		if rp.UUID != nil {
			part.UUID = *rp.UUID
		}
		// disko's default priorities.
		switch {
		case rp.Priority != nil:
			part.Priority = *rp.Priority
		case part.Size == "100%":
			part.Priority = 9001
		case part.Type == "EF02":
			part.Priority = 100
		default:
			part.Priority = 1000
		}
		if rp.Index != nil {
			part.Index = *rp.Index
		}
		if rp.Alignment != nil {
			part.Alignment = *rp.Alignment
		}
		for _, a := range part.Attributes {
			if a < 0 || a > 63 {
				return nil, fmt.Errorf("%w: %s.attributes: bit %d; GPT attributes are bits 0–63", ErrPlan, pp, a)
			}
		}
		if h := bytes.TrimSpace(rp.Hybrid); len(h) > 0 && string(h) != "null" {
			// sgdisk -h plus sfdisk type codes: a hybrid MBR this release
			// does not write; never silently dropped.
			p.Unsupported = append(p.Unsupported, Unsupported{Type: "hybrid MBR", Path: pp + ".hybrid"})
		}
		if hasContent {
			c := &Content{Type: rc.Type, Format: rc.Format, MountOptions: rc.MountOptions, ExtraArgs: rc.ExtraArgs}
			if rc.Mountpoint != nil {
				c.Mountpoint = *rc.Mountpoint
			}
			part.Content = c
			if !applicable[rc.Type] {
				if !slices.Contains(knownContent, rc.Type) {
					return nil, fmt.Errorf("%w: %s.content.type %q is not a disko content type", ErrPlan, pp, rc.Type)
				}
				p.Unsupported = append(p.Unsupported, Unsupported{Type: rc.Type, Path: pp + ".content"})
			}
		}
		out = append(out, part)
	}
	// Creation order: priority, then name (disko sorts attrValues, which are
	// ordered by name, with a stable sort on priority).
	sort.SliceStable(out, func(i, j int) bool { return out[i].Priority < out[j].Priority })
	for i := range out {
		if out[i].Index == 0 {
			out[i].Index = i + 1
		}
	}
	return out, nil
}

// defaultLabel is disko's partition label: "disk-<disk>-<part>", or the
// first 36 hex digits of its sha256 when longer than 36 (a GPT name holds
// 36 UTF-16 units).
func defaultLabel(disk, part string) string {
	base := "disk-" + disk + "-" + part
	if len(base) > 36 {
		sum := sha256.Sum256([]byte(base))
		return hex.EncodeToString(sum[:])[:36]
	}
	return base
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// GPT type codes as sgdisk spells them.
var typeCodes = map[string]string{
	"EF00": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", // EFI system
	"EF02": "21686148-6449-6E6F-744E-656564454649", // BIOS boot
	"8300": "0FC63DAF-8483-4772-8E79-3D69D8477DE4", // Linux filesystem
	"8200": "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", // Linux swap
	"8302": "933AC7E1-2EB4-4F13-B844-0E14E2AEF915", // Linux /home
	"8304": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", // Linux x86-64 root
	"8309": "CA7D7CCB-63ED-4C53-861C-1742536059CC", // Linux LUKS
	"8E00": "E6D6D379-F507-44C2-A23C-238F2A3DF928", // Linux LVM
	"FD00": "A19D880F-05FC-4D3B-A006-743F0F84911E", // Linux RAID
	"BF00": "6A85CF4D-1DD2-11B2-99A6-080020736631", // Solaris root (ZFS)
	"0700": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", // Microsoft basic data
}

var guidRE = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

// typeGUID resolves a type code or GUID; "" when unknown.
func typeGUID(code string) string {
	if g, ok := typeCodes[strings.ToUpper(code)]; ok {
		return g
	}
	if guidRE.MatchString(code) {
		return strings.ToUpper(code)
	}
	return ""
}

// Validate names every problem of the plan with its JSON path. A plan with
// Unsupported content is invalid for Apply: each is reported as
// "unsupported: <type> at <path>". uefi requires an ESP.
func (p *DiskoPlan) Validate(uefi bool) error {
	var probs []string
	add := func(path, format string, args ...any) {
		probs = append(probs, path+": "+fmt.Sprintf(format, args...))
	}
	for _, u := range p.Unsupported {
		probs = append(probs, u.String())
	}
	if len(p.Disks) == 0 {
		add("disk", "no disks")
	}
	mounts := map[string]string{}
	esp := false
	for _, d := range p.Disks {
		if d.Table != "gpt" {
			continue // reported as unsupported
		}
		hundred := 0
		for i, part := range d.Partitions {
			if part.TypeGUID == "" {
				add(part.Path+".type", "unknown type %q; use an sgdisk code (EF00, 8300, 8200, EF02, …) or a GUID", part.Type)
			}
			if n := len(utf16.Encode([]rune(part.Label))); n > 36 {
				add(part.Path+".label", "%q is %d UTF-16 units; GPT names hold 36", part.Label, n)
			}
			if part.Size == "100%" {
				hundred++
				if i != len(d.Partitions)-1 {
					add(part.Path+".size", "100%% must be the last partition in creation order (priority %d)", part.Priority)
				}
			} else if part.Size != "" {
				if _, err := sectorsOf(part.Size); err != nil {
					add(part.Path+".size", "%v", err)
				}
			} else if part.End == "" {
				add(part.Path+".size", "missing (and no end)")
			}
			if part.Content != nil {
				switch part.Content.Type {
				case "filesystem":
					if !formats[part.Content.Format] {
						add(part.Path+".content.format", "%q cannot be created in-process; use vfat or ext4", part.Content.Format)
					}
					if part.Content.Format == "vfat" && part.TypeGUID == typeCodes["EF00"] {
						esp = true
					}
				}
				if mp := part.Content.Mountpoint; mp != "" {
					if other, dup := mounts[mp]; dup {
						add(part.Path+".content.mountpoint", "%q is also mounted by %s", mp, other)
					}
					mounts[mp] = part.Path
				}
			}
		}
		if hundred > 1 {
			add(d.Path, "%d partitions with size 100%%; at most one", hundred)
		}
		// Geometry is checked against the real disk (Layout, Apply):
		// imageSize is only the size of a disk image disko builds.
		if _, err := d.Layout(20 * int64(ultracloud.TiB)); err != nil && !strings.Contains(err.Error(), "disk too small") {
			add(d.Path, "%v", err)
		}
	}
	if uefi && !esp {
		add("disk", "no ESP (a vfat partition of type EF00) for a UEFI node")
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w is invalid:\n  - %s", ErrPlan, strings.Join(probs, "\n  - "))
	}
	return nil
}
