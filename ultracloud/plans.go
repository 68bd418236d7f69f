package ultracloud

// Disko plans of the baremetal-iso topology, in disko's shape: the control
// plane gets ESP + root, the worker ESP + swap + root.
const (
	controlPlaneDisko = `{"disk":{"main":{"type":"disk","device":"/dev/vda","content":{"type":"gpt","partitions":{
  "ESP":{"size":"128M","type":"EF00","content":{"type":"filesystem","format":"vfat","mountpoint":"/boot","mountOptions":["umask=0077"]}},
  "root":{"size":"100%","content":{"type":"filesystem","format":"ext4","mountpoint":"/","extraArgs":["-L","nixos"]}}}}}}}`
	workerDisko = `{"disk":{"main":{"type":"disk","device":"/dev/vda","content":{"type":"gpt","partitions":{
  "ESP":{"size":"128M","type":"EF00","content":{"type":"filesystem","format":"vfat","mountpoint":"/boot","mountOptions":["umask=0077"]}},
  "swap":{"size":"64M","content":{"type":"swap"}},
  "root":{"size":"100%","content":{"type":"filesystem","format":"ext4","mountpoint":"/","extraArgs":["-L","nixos"]}}}}}}}`
)
