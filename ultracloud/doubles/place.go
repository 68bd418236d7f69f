package doubles

import (
	"slices"
	"sort"
)

// Plan is what the scheduler writes: instance id → node to (re)assign,
// and instance ids to remove.
type Plan struct {
	Assign map[string]string
	Remove []string
	// Moved lists the reassigned instances whose node was not live, with
	// the node they left (for the log and the lane's timeline).
	Moved map[string]string
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool { return len(p.Assign) == 0 && len(p.Remove) == 0 }

// Place decides where each service's replicas run: an instance assigned
// to a live node stays; an unassigned instance, or one whose node is not
// live, goes to the live node running the fewest instances of that
// service (then the fewest overall, then by name); instances past a
// service's replica count, and of services that are gone, are removed.
// With no live node nothing is assigned. Place is deterministic.
func Place(services map[string]ServiceSpec, live []string, current map[string]string) Plan {
	p := Plan{Assign: map[string]string{}, Moved: map[string]string{}}
	isLive := map[string]bool{}
	for _, n := range live {
		isLive[n] = true
	}
	total := map[string]int{}
	for _, node := range current {
		if isLive[node] {
			total[node]++
		}
	}
	for id := range current {
		svc, idx, err := ParseInstanceID(id)
		if err != nil {
			p.Remove = append(p.Remove, id)
			continue
		}
		if spec, ok := services[svc]; !ok || idx >= spec.Replicas {
			p.Remove = append(p.Remove, id)
			if isLive[current[id]] {
				total[current[id]]--
			}
		}
	}
	sort.Strings(p.Remove)
	names := make([]string, 0, len(services))
	for s := range services {
		names = append(names, s)
	}
	sort.Strings(names)
	nodes := slices.Clone(live)
	sort.Strings(nodes)
	for _, svc := range names {
		per := map[string]int{}
		for i := 0; i < services[svc].Replicas; i++ {
			if n, ok := current[InstanceID(svc, i)]; ok && isLive[n] {
				per[n]++
			}
		}
		for i := 0; i < services[svc].Replicas; i++ {
			id := InstanceID(svc, i)
			old, ok := current[id]
			if ok && isLive[old] {
				continue
			}
			if len(nodes) == 0 {
				continue
			}
			best := nodes[0]
			for _, n := range nodes[1:] {
				if per[n] < per[best] || (per[n] == per[best] && total[n] < total[best]) {
					best = n
				}
			}
			per[best]++
			total[best]++
			p.Assign[id] = best
			if ok {
				p.Moved[id] = old
			}
		}
	}
	return p
}
