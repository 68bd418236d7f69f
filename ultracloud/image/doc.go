// Package image writes and reads boot artefacts in-process: initramfs
// archives (newc cpio), ISO 9660 images and partitioned disk images. Nothing
// here mounts, loops or shells out.
package image
