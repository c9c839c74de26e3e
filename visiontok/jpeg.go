package visiontok

// JPEG decoding runs on libjpeg-turbo, the library PIL decodes with, called as PIL's JpegDecode.c
// calls it: libjpeg's defaults (the accurate integer IDCT, fancy chroma upsampling, no scaling),
// out_color_space grayscale, RGB or CMYK by the number of components in the frame header. Go's
// image/jpeg differs from it in its IDCT, colour conversion and chroma upsampling (measured on the
// q90 4:2:0 test photo: two thirds of the crop's values differ, by up to 64/255; inputs_test.go). The static library is
// linked, so the binary needs no libjpeg at run time; building needs Debian's
// libjpeg62-turbo-dev (the Makefile and .ci/run say so).

/*
#cgo LDFLAGS: -l:libjpeg.a
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

struct toklip_jpeg_err {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	int truncated;       // libjpeg reached the end of the data before the image was whole
	char message[JMSG_LENGTH_MAX];
};

static void toklip_jpeg_error_exit(j_common_ptr cinfo) {
	struct toklip_jpeg_err *e = (struct toklip_jpeg_err *)cinfo->err;
	(*cinfo->err->format_message)(cinfo, e->message);
	longjmp(e->jump, 1);
}

// Warnings (corrupt-data notes libjpeg recovers from) are ignored as PIL ignores them, except
// the end of the data: PIL refuses a truncated JPEG ("image file is truncated").
static void toklip_jpeg_emit_message(j_common_ptr cinfo, int level) {
	struct toklip_jpeg_err *e = (struct toklip_jpeg_err *)cinfo->err;
	if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
		e->truncated = 1;
	}
}

// toklip_jpeg_decode decodes data. Mode 1: read the header only, filling w, h and comps. Mode 2:
// decode into out (w * h * comps bytes). It returns 0, or -1 with message set. max_memory bounds
// libjpeg's own buffers (a progressive file's coefficients among them).
static int toklip_jpeg_decode(const unsigned char *data, unsigned long len, int mode, long max_memory,
                             int *w, int *h, int *comps, int *progressive, unsigned char *out, char *message) {
	struct jpeg_decompress_struct cinfo;
	struct toklip_jpeg_err err;
	memset(&err, 0, sizeof err);
	cinfo.err = jpeg_std_error(&err.pub);
	err.pub.error_exit = toklip_jpeg_error_exit;
	err.pub.emit_message = toklip_jpeg_emit_message;
	if (setjmp(err.jump)) {
		strncpy(message, err.message, JMSG_LENGTH_MAX - 1);
		message[JMSG_LENGTH_MAX - 1] = 0;
		jpeg_destroy_decompress(&cinfo);
		return -1;
	}
	jpeg_create_decompress(&cinfo);
	cinfo.mem->max_memory_to_use = max_memory;
	jpeg_mem_src(&cinfo, data, len);
	jpeg_read_header(&cinfo, TRUE);
	if (err.truncated) {
		strcpy(message, "the file ends inside its header");
		jpeg_destroy_decompress(&cinfo);
		return -1;
	}
	*w = cinfo.image_width;
	*h = cinfo.image_height;
	*comps = cinfo.num_components;
	*progressive = cinfo.progressive_mode;
	if (mode == 1) {
		jpeg_destroy_decompress(&cinfo);
		return 0;
	}
	switch (cinfo.num_components) {
	case 1: cinfo.out_color_space = JCS_GRAYSCALE; break;
	case 3: cinfo.out_color_space = JCS_RGB; break;
	case 4: cinfo.out_color_space = JCS_CMYK; break;
	}
	jpeg_start_decompress(&cinfo);
	if (cinfo.output_width != (JDIMENSION)*w || cinfo.output_height != (JDIMENSION)*h ||
	    cinfo.output_components != *comps) {
		strcpy(message, "libjpeg's output shape differs from the header");
		jpeg_destroy_decompress(&cinfo);
		return -1;
	}
	size_t stride = (size_t)*w * (size_t)*comps;
	while (cinfo.output_scanline < cinfo.output_height && !err.truncated) {
		JSAMPROW row = out + (size_t)cinfo.output_scanline * stride;
		jpeg_read_scanlines(&cinfo, &row, 1);
	}
	if (err.truncated) {
		strcpy(message, "the file is truncated: it ends before the image is whole");
		jpeg_destroy_decompress(&cinfo);
		return -1;
	}
	// A missing end marker after a whole image is only a warning, as in PIL.
	jpeg_finish_decompress(&cinfo);
	jpeg_destroy_decompress(&cinfo);
	return 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// jpegMemory bounds libjpeg's own allocations for one decode: a 40-megapixel progressive file's
// coefficients take 240 MB.
const jpegMemory = 512 << 20

func jpegCall(data []byte, mode int, out []byte) (w, h, comps int, progressive bool, err error) {
	var cw, ch, cc, cp C.int
	var msg [C.JMSG_LENGTH_MAX]C.char
	var outPtr *C.uchar
	if len(out) > 0 {
		outPtr = (*C.uchar)(unsafe.Pointer(&out[0]))
	}
	rc := C.toklip_jpeg_decode((*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), C.int(mode), C.long(jpegMemory),
		&cw, &ch, &cc, &cp, outPtr, &msg[0])
	if rc != 0 {
		return 0, 0, 0, false, errors.New(C.GoString(&msg[0]))
	}
	return int(cw), int(ch), int(cc), cp != 0, nil
}

func readJPEG(data []byte) (header, func() (*Picture, error), error) {
	w, h, comps, progressive, err := jpegCall(data, 1, nil)
	if err != nil {
		return header{}, nil, err
	}
	var mode Mode
	switch comps {
	case 1:
		mode = ModeL
	case 3:
		mode = ModeRGB
	case 4:
		mode = ModeCMYK
	default:
		return header{}, nil, fmt.Errorf("a JPEG of %d components is not gray, RGB or CMYK", comps)
	}
	px := int64(w) * int64(h)
	cost := px * int64(comps)
	if progressive { // libjpeg holds every coefficient (2 bytes, one a pixel and component at most), and its buffers
		cost += px * int64(comps) * 2 * 3
	}
	return header{width: w, height: h, cost: cost, orientation: jpegOrientation(data)}, func() (*Picture, error) {
		pic := newPicture(mode, w, h)
		if _, _, _, _, err := jpegCall(data, 2, pic.Pix); err != nil {
			return nil, err
		}
		if mode == ModeCMYK { // PIL reads 4 components as Adobe's inverted CMYK ("CMYK;I")
			for i, v := range pic.Pix {
				pic.Pix[i] = ^v
			}
		}
		return pic, nil
	}, nil
}
