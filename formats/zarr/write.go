package zarr

import (
	"fmt"
	"os"
	"path/filepath"

	"ckptbench/iox"
)

// WriteArray creates the array dir and its parents, and writes src, the
// array's bytes in C order, as the zarr v2 array that md describes. It
// writes the .zarray file first, as TensorStore does, then every chunk
// compressed with c, fsyncing each file, and finally fsyncs dir. Edge
// chunks are padded to full size with the fill value. Every chunk is
// written, even one of only the fill value, so a reader may treat a
// missing chunk as lost data. dir should be new: chunk files of an array
// already there that the new chunking does not overwrite stay in place.
// The caller syncs the parents of dir.
func WriteArray(dir string, md Metadata, c Codec, src []byte) error {
	if err := md.Validate(); err != nil {
		return fmt.Errorf("zarr: write array %s: %w", dir, err)
	}
	if id, _ := compressorID(md.Compressor); id != c.ID() {
		return fmt.Errorf("zarr: write array %s: metadata names compressor %s but the codec is %s", dir, id, c.ID())
	}
	dtype, _ := md.TensorDType()
	g, err := newGrid(md)
	if err != nil {
		return fmt.Errorf("zarr: write array %s: %w", dir, err)
	}
	if want := g.itemSize * product(md.Shape); int64(len(src)) != want {
		return fmt.Errorf("zarr: write array %s: source has %d bytes, but shape %v of %s needs %d", dir, len(src), md.Shape, dtype, want)
	}
	fill, _ := md.FillBytes()

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("zarr: %w", err)
	}
	if err := WriteMetadata(dir, md); err != nil {
		return err
	}

	sep := md.Separator()
	scratchBuf, encodedBuf := getBuffer(), getBuffer()
	defer chunkBuffers.Put(scratchBuf)
	defer chunkBuffers.Put(encodedBuf)
	var scratch []byte // the padding buffer, once a chunk needs one
	subdirs := map[string]bool{}
	err = g.each(func(index []int64) error {
		key := ChunkKey(index, sep)
		path := filepath.Join(dir, filepath.FromSlash(key))
		if sep == "/" && len(index) > 1 {
			sub := filepath.Dir(path)
			if !subdirs[sub] {
				if err := os.MkdirAll(sub, 0o755); err != nil {
					return fmt.Errorf("zarr: %w", err)
				}
				subdirs[sub] = true
			}
		}
		off, n, contiguous := g.contiguous(index)
		var chunk []byte
		if contiguous && n == g.chunkBytes {
			chunk = src[off : off+n]
		} else {
			if scratch == nil {
				scratch = growBuffer(scratchBuf, g.chunkBytes)
			}
			fillBytes(scratch, fill)
			if contiguous {
				copy(scratch, src[off:off+n])
			} else {
				g.copyBlock(src, scratch, index, false)
			}
			chunk = scratch
		}
		data := chunk
		if c.ID() != "raw" {
			encoded, err := c.Encode(*encodedBuf, chunk)
			if err != nil {
				return fmt.Errorf("zarr: encode chunk %s: %w", path, err)
			}
			*encodedBuf = encoded
			data = encoded
		}
		return writeFileSync(path, data)
	})
	if err != nil {
		return err
	}
	// Nested chunk directories first, so that dir's own sync comes last.
	for sub := range subdirs {
		if err := syncDirs(sub, dir); err != nil {
			return err
		}
	}
	return iox.SyncDir(dir)
}

// syncDirs fsyncs dir and each of its parents up to, but not including, top.
func syncDirs(dir, top string) error {
	for dir != top && len(dir) > len(top) {
		if err := iox.SyncDir(dir); err != nil {
			return err
		}
		dir = filepath.Dir(dir)
	}
	return nil
}

func product(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}
