package bench

import "ckptbench/device"

// DeviceName returns the device: line of the results, "cpu" or
// "cuda:N (name)". Loads end on the CPU on every device today: placing
// loaded tensors on a GPU is device.Place's job and not yet timed here.
func DeviceName() string { return device.Current().String() }
