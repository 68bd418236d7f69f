// Package lanes holds every documented validation lane of UltraCloud,
// composed from the testkit's primitives, and the registry that lists them.
package lanes
