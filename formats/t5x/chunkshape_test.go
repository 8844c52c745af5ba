package t5x

import (
	"slices"
	"testing"

	"ckptbench/model"
	"ckptbench/tensor"
)

func TestChunkShapeOpenLLaMA3B(t *testing.T) {
	inv := model.OpenLLaMA3B.Config.Inventory(tensor.Float16)
	multi := 0
	for _, m := range inv {
		chunks := ChunkShape(m.Shape, m.DType.Size(), DefaultChunkBytes)
		n := newGrid(m.Shape, chunks).numChunks()
		switch m.Name {
		case "model.embed_tokens.weight", "lm_head.weight":
			multi++
			if !slices.Equal(chunks, []int64{8000, 3200}) || n != 4 {
				t.Errorf("%s: chunks %v (%d of them), want 4 of [8000 3200]", m.Name, chunks, n)
			}
		default:
			if !slices.Equal(chunks, m.Shape) {
				t.Errorf("%s %v: chunks %v, want one chunk of the whole shape", m.Name, m.Shape, chunks)
			}
		}
	}
	if multi != 2 {
		t.Errorf("found %d tensors with several chunks, want the embedding and lm_head", multi)
	}
}

func TestChunkShapeRule(t *testing.T) {
	tests := []struct {
		name     string
		shape    []int64
		itemSize int
		target   int64
		want     []int64
	}{
		{"fits", []int64{8640, 3200}, 2, DefaultChunkBytes, []int64{8640, 3200}},
		// float32 down_proj: 110 MB, so the larger dimension 8640 drops
		// to its next divisor 4320, cutting columns.
		{"float32 down_proj", []int64{3200, 8640}, 4, DefaultChunkBytes, []int64{3200, 4320}},
		{"float32 embedding", []int64{32000, 3200}, 4, DefaultChunkBytes, []int64{4000, 3200}},
		{"scalar", []int64{}, 2, DefaultChunkBytes, []int64{}},
		{"zero dimension", []int64{0, 5}, 4, 8, []int64{1, 1}},
		{"all zero", []int64{0}, 4, 8, []int64{1}},
		// A prime length has no divisor between itself and 1.
		{"prime", []int64{65537}, 2, 1 << 10, []int64{1}},
		// Greedy: 64 halves to 8, then 7 is the largest and drops to 1,
		// although [7 2] would hold more of the target.
		{"greedy", []int64{7, 64}, 1, 16, []int64{1, 4}},
		// On a tie the first dimension is cut first.
		{"tie", []int64{6, 6}, 1, 30, []int64{3, 6}},
		{"ones", []int64{1, 1, 1}, 8, 1, []int64{1, 1, 1}},
		{"target below one element", []int64{4, 4}, 8, 3, []int64{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ChunkShape(tt.shape, tt.itemSize, tt.target)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("ChunkShape(%v, %d, %d) = %v, want %v", tt.shape, tt.itemSize, tt.target, got, tt.want)
			}
		})
	}
}

// TestChunkShapeInvariants checks, over many shapes, that the chunks
// divide the shape and fit the target.
func TestChunkShapeInvariants(t *testing.T) {
	for a := int64(1); a <= 40; a++ {
		for b := int64(1); b <= 40; b += 3 {
			for _, target := range []int64{1, 7, 64, 300, 2000} {
				shape := []int64{a, b, 3}
				chunks := ChunkShape(shape, 1, target)
				if product(chunks) > target && product(chunks) != 1 {
					t.Fatalf("ChunkShape(%v, target %d) = %v holds %d elements", shape, target, chunks, product(chunks))
				}
				for i := range shape {
					if shape[i]%chunks[i] != 0 {
						t.Fatalf("ChunkShape(%v, target %d) = %v: %d does not divide %d", shape, target, chunks, chunks[i], shape[i])
					}
				}
			}
		}
	}
}

func TestDivisorsOf(t *testing.T) {
	if got, want := divisorsOf(32000)[:12], []int64{1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 40, 50}; !slices.Equal(got, want) {
		t.Errorf("divisorsOf(32000) starts %v, want %v", got, want)
	}
	if got := divisorsOf(1_000_000_007); !slices.Equal(got, []int64{1, 1_000_000_007}) {
		t.Errorf("divisorsOf(1e9+7) = %v, want [1 1000000007]", got)
	}
	if got := divisorsOf(36); !slices.Equal(got, []int64{1, 2, 3, 4, 6, 9, 12, 18, 36}) {
		t.Errorf("divisorsOf(36) = %v", got)
	}
}
