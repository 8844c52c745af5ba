package t5x

import (
	"context"
	"sync"
	"sync/atomic"
)

// pipeline runs the two stages of a save or load. CPU tasks (gather,
// encode, decode, scatter) run on one goroutine per core, and I/O tasks on
// IOConcurrency goroutines. Each I/O goroutine has its own block-aligned
// scratch block for the partial last block of O_DIRECT transfers.
//
// The first error cancels ctx. Tasks still run after that, so each can
// release its buffers, but they must check ctx and skip their work.
type pipeline struct {
	ctx    context.Context
	cancel context.CancelFunc
	pool   *bufferPool

	cpu     chan func() error
	io      chan func(tail []byte) error
	pending sync.WaitGroup // tasks submitted and not finished
	workers sync.WaitGroup
	tails   []byte
	peak    *atomic.Int64 // destination of the pool's peak in wait, or nil

	mu  sync.Mutex
	err error
}

func newPipeline(ioWorkers int, budget int64, peak *atomic.Int64) *pipeline {
	ctx, cancel := context.WithCancel(context.Background())
	p := &pipeline{
		ctx:    ctx,
		cancel: cancel,
		pool:   newBufferPool(budget),
		peak:   peak,
		cpu:    make(chan func() error),
		io:     make(chan func([]byte) error),
	}
	p.tails = make([]byte, ioWorkers*blockSize+blockSize)
	// Go allocations this size are page-aligned in practice, but make
	// sure by starting at the first block boundary.
	first := 0
	for !aligned(p.tails[first:]) {
		first++
	}
	for i := range ioWorkers {
		tail := p.tails[first+i*blockSize : first+(i+1)*blockSize]
		p.workers.Add(1)
		go func() {
			defer p.workers.Done()
			for task := range p.io {
				p.fail(task(tail))
				p.pending.Done()
			}
		}()
	}
	for range cpuWorkers() {
		p.workers.Add(1)
		go func() {
			defer p.workers.Done()
			for task := range p.cpu {
				p.fail(task())
				p.pending.Done()
			}
		}()
	}
	return p
}

// fail records err, if it is the first, and cancels the pipeline.
func (p *pipeline) fail(err error) {
	if err == nil {
		return
	}
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
	p.cancel()
}

// failed reports whether a task has failed.
func (p *pipeline) failed() bool { return p.ctx.Err() != nil }

// goIO runs task on an I/O goroutine, waiting for one to be free. Tasks
// of either kind may submit more tasks, but only one kind may wait on the
// other, or the two stages could block each other. In a save, CPU tasks
// feed I/O tasks, and in a load, I/O tasks feed CPU tasks.
func (p *pipeline) goIO(task func(tail []byte) error) {
	p.pending.Add(1)
	p.io <- task
}

// goCPU runs task on a CPU goroutine, waiting for one to be free.
func (p *pipeline) goCPU(task func() error) {
	p.pending.Add(1)
	p.cpu <- task
}

// wait waits for every task, including those submitted by tasks, stops
// the workers and returns the first error. Submit nothing after it.
func (p *pipeline) wait() error {
	p.pending.Wait()
	close(p.cpu)
	close(p.io)
	p.workers.Wait()
	if p.peak != nil {
		p.peak.Store(p.pool.peakBytes())
	}
	p.pool.close()
	p.cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
