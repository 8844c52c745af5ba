package t5x

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// blockSize is the alignment O_DIRECT needs for buffer addresses, file
// offsets and lengths. 4096 covers the logical block size of common disks
// and the page size, which is what memory maps are aligned to.
const blockSize = 4096

func alignUp(n int64) int64 { return (n + blockSize - 1) &^ (blockSize - 1) }

// bufferPool enforces the byte budget of a save or load. It hands out
// page-aligned buffers from anonymous memory maps, keeps released ones
// for reuse, and also counts reservations: bytes in flight that need no
// buffer, such as a chunk written straight from tensor memory.
//
// The buffers live outside the Go heap on purpose. With a heap the size of
// a model, the garbage collector lets discarded buffers pile up to the
// model's size before it collects them, so the budget would not bound
// resident memory. Mapped bytes (free or in use) plus reservations stay
// within the budget, except that one request larger than the whole budget
// is served alone, once every other is back.
type bufferPool struct {
	budget int64

	mu       sync.Mutex
	cond     *sync.Cond
	mapped   int64 // bytes of all live maps, free or in use
	inUse    int64 // bytes of maps handed out
	reserved int64
	free     [][]byte
	closed   bool
	peak     int64 // most bytes of mapped plus reserved seen at once
}

func newBufferPool(budget int64) *bufferPool {
	p := &bufferPool{budget: budget}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// get returns a block-aligned buffer of length n (its capacity rounded up
// to the block size), waiting while the budget is exhausted. It returns
// ctx's error if ctx ends first.
func (p *bufferPool) get(ctx context.Context, n int64) ([]byte, error) {
	size := alignUp(max(n, 1))
	var b []byte
	err := p.wait(ctx, size, true, func() error {
		if b = p.takeFree(size); b != nil {
			p.inUse += int64(cap(b))
			return nil
		}
		var err error
		b, err = unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return fmt.Errorf("t5x: allocate a %d-byte buffer: %w", size, err)
		}
		// Huge pages cut the page faults of filling a fresh buffer, as in
		// StateDict.Alloc; the advice may fail where THP is off.
		_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
		p.mapped += size
		p.inUse += size
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b[:n], nil
}

// reserve counts n bytes in flight without allocating, waiting like get.
func (p *bufferPool) reserve(ctx context.Context, n int64) error {
	return p.wait(ctx, n, false, func() error {
		p.reserved += n
		return nil
	})
}

// wait blocks until size more bytes fit in the budget, or a free buffer
// of that size exists when reuse is set, unmapping free buffers to make
// room. It then calls take with p.mu held.
func (p *bufferPool) wait(ctx context.Context, size int64, reuse bool, take func() error) error {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()

	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.closed {
			return fmt.Errorf("t5x: buffer pool used after close")
		}
		if reuse && p.hasFree(size) {
			return take()
		}
		for p.mapped+p.reserved+size > p.budget && len(p.free) > 0 {
			last := p.free[len(p.free)-1]
			p.free = p.free[:len(p.free)-1]
			p.mapped -= int64(cap(last))
			unix.Munmap(last)
		}
		if p.mapped+p.reserved+size <= p.budget || (p.inUse == 0 && p.reserved == 0) {
			err := take()
			p.peak = max(p.peak, p.mapped+p.reserved)
			return err
		}
		p.cond.Wait()
	}
}

// hasFree reports whether a free buffer of at least size bytes exists.
func (p *bufferPool) hasFree(size int64) bool {
	for _, b := range p.free {
		if int64(cap(b)) >= size {
			return true
		}
	}
	return false
}

// takeFree removes and returns the smallest free buffer that holds size
// bytes, or nil.
func (p *bufferPool) takeFree(size int64) []byte {
	best := -1
	for i, b := range p.free {
		if int64(cap(b)) >= size && (best < 0 || cap(b) < cap(p.free[best])) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	b := p.free[best]
	p.free = append(p.free[:best], p.free[best+1:]...)
	return b[:cap(b)]
}

// put returns a buffer from get to the pool. A nil buffer is ignored.
func (p *bufferPool) put(b []byte) {
	if b == nil {
		return
	}
	p.mu.Lock()
	p.inUse -= int64(cap(b))
	if p.closed {
		p.mapped -= int64(cap(b))
		unix.Munmap(b[:cap(b)])
	} else {
		p.free = append(p.free, b[:cap(b)])
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// unreserve returns n reserved bytes.
func (p *bufferPool) unreserve(n int64) {
	p.mu.Lock()
	p.reserved -= n
	p.cond.Broadcast()
	p.mu.Unlock()
}

// close unmaps the free buffers; buffers still in use are unmapped when
// they are put back.
func (p *bufferPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.free {
		p.mapped -= int64(cap(b))
		unix.Munmap(b)
	}
	p.free = nil
	p.closed = true
	p.cond.Broadcast()
}

// peakBytes returns the most bytes mapped and reserved at once.
func (p *bufferPool) peakBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}
