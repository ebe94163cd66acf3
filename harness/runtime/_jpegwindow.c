/* Decode only the window of a JPEG that a crop needs, the way tf.data's decode_and_crop_jpeg does
 * (tensorflow/core/lib/jpeg/jpeg_mem.cc), with libjpeg-turbo's region API:
 *   - jpeg_skip_scanlines: rows above the window are entropy-decoded only (no IDCT, no upsampling,
 *     no colour conversion); rows below it are never read;
 *   - jpeg_crop_scanline: only the iMCU columns the window covers go through IDCT and colour conversion;
 *   - scale_num/8 DCT scaling: a window that is downscaled anyway is decoded at a reduced size;
 * then the window is resampled to S x S by bilinear interpolation (half-pixel centres, as
 * tf.image.resize and torch's interpolate(align_corners=False)), mirrored when asked, in one pass.
 * Pillow's decoder has none of the three (only 1/2, 1/4, 1/8 draft scaling).
 *
 * Python API (module harness.runtime._jpegwindow, CPython limited API, no numpy C API):
 *   header(data) -> (width, height, components, colour_ok)
 *   decode(data, scale_num, left, top, right, bottom, grey, bx0, by0, bx1, by1, size, flip)
 *     -> (pixels, width, height, x_shift)
 *   with size > 0: pixels are S*S*C bytes, the box (bx0, by0)-(bx1, by1) (floats, scaled pixels relative
 *   to (left, top)) resampled to S x S; with size == 0: the decoded window itself, width x height,
 *   whose first column is x_shift pixels left of `left` (iMCU alignment).
 * See harness/runtime/jpeg.py for the contract; that module is the only caller. */
#define PY_SSIZE_T_CLEAN
#define Py_LIMITED_API 0x030A0000
#include <Python.h>

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

struct error_state {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

static void on_error(j_common_ptr cinfo) {
    struct error_state *err = (struct error_state *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->jump, 1);
}

/* Warnings are ignored, as Pillow ignores them, except a premature end of data: libjpeg would pad the
 * image with grey, Pillow calls the file truncated. */
static void on_message(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) on_error(cinfo);
}

static PyObject *jpeg_error;

static PyObject *header(PyObject *self, PyObject *args) {
    const char *buf;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "y#", &buf, &len)) return NULL;
    struct jpeg_decompress_struct cinfo;
    struct error_state err;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error;
    err.pub.emit_message = on_message;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        PyErr_SetString(jpeg_error, err.message);
        return NULL;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (const unsigned char *)buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    int colour_ok = (cinfo.jpeg_color_space == JCS_YCbCr || cinfo.jpeg_color_space == JCS_GRAYSCALE ||
                     cinfo.jpeg_color_space == JCS_RGB) && cinfo.data_precision == 8;
    PyObject *result = Py_BuildValue("(iiii)", (int)cinfo.image_width, (int)cinfo.image_height,
                                     cinfo.num_components, colour_ok);
    jpeg_destroy_decompress(&cinfo);
    return result;
}

/* Bilinear resampling of the box (x0, y0)-(x1, y1) of an image (w x h x c, rows packed) to size x size:
 * output pixel (i, j) samples the image at x = x0 + (j + 0.5) * (x1 - x0) / size - 0.5 (likewise y),
 * clamped to the image; weights in 1/256 steps, rounded to nearest. flip mirrors each output row. */
static void resample(const unsigned char *src, int w, int h, int c, double x0, double y0, double x1, double y1,
                     int size, int flip, unsigned char *dst) {
    int *xi = malloc(sizeof(int) * 2 * (size_t)size), *xw = malloc(sizeof(int) * (size_t)size);
    if (xi == NULL || xw == NULL) {  /* a 64k-pixel row: not reached at image sizes */
        free(xi);
        free(xw);
        memset(dst, 0, (size_t)size * size * c);
        return;
    }
    double sx = (x1 - x0) / size, sy = (y1 - y0) / size;
    for (int j = 0; j < size; j++) {
        double x = x0 + (j + 0.5) * sx - 0.5;
        if (x < 0) x = 0;
        if (x > w - 1) x = w - 1;
        int a = (int)x;
        int b = a + 1 < w ? a + 1 : a;
        int col = flip ? size - 1 - j : j;
        xi[2 * col] = a * c;
        xi[2 * col + 1] = b * c;
        xw[col] = (int)((x - a) * 256 + 0.5);
    }
    for (int i = 0; i < size; i++) {
        double y = y0 + (i + 0.5) * sy - 0.5;
        if (y < 0) y = 0;
        if (y > h - 1) y = h - 1;
        int a = (int)y;
        int b = a + 1 < h ? a + 1 : a;
        int wy = (int)((y - a) * 256 + 0.5);
        const unsigned char *top = src + (size_t)a * w * c, *bottom = src + (size_t)b * w * c;
        unsigned char *out = dst + (size_t)i * size * c;
        for (int j = 0; j < size; j++) {
            int p = xi[2 * j], q = xi[2 * j + 1], wx = xw[j];
            for (int k = 0; k < c; k++) {
                int upper = top[p + k] * (256 - wx) + top[q + k] * wx;
                int lower = bottom[p + k] * (256 - wx) + bottom[q + k] * wx;
                out[j * c + k] = (unsigned char)((upper * (256 - wy) + lower * wy + 32768) >> 16);
            }
        }
    }
    free(xi);
    free(xw);
}

static PyObject *decode(PyObject *self, PyObject *args) {
    const char *buf;
    Py_ssize_t len;
    int scale_num, left, top, right, bottom, grey, size, flip;
    double bx0, by0, bx1, by1;
    if (!PyArg_ParseTuple(args, "y#iiiiipddddip", &buf, &len, &scale_num, &left, &top, &right, &bottom, &grey,
                          &bx0, &by0, &bx1, &by1, &size, &flip))
        return NULL;
    if (size < 0 || size > 65535 || !(bx1 > bx0) || !(by1 > by0)) {
        PyErr_SetString(PyExc_ValueError, "size must be 0..65535 and the box non-empty");
        return NULL;
    }
    struct jpeg_decompress_struct cinfo;
    struct error_state err;
    unsigned char *volatile pixels = NULL;
    PyThreadState *volatile released = NULL;  /* the GIL is given up while scanlines are decoded */
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error;
    err.pub.emit_message = on_message;
    if (setjmp(err.jump)) {
        if (released != NULL) PyEval_RestoreThread(released);
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        PyErr_SetString(jpeg_error, err.message);
        return NULL;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (const unsigned char *)buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.scale_num = (unsigned int)scale_num;
    cinfo.scale_denom = 8;
    cinfo.out_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_calc_output_dimensions(&cinfo);
    if (scale_num < 1 || scale_num > 8 || left < 0 || top < 0 || right <= left || bottom <= top ||
        (JDIMENSION)right > cinfo.output_width || (JDIMENSION)bottom > cinfo.output_height) {
        PyErr_Format(PyExc_ValueError, "window (%d, %d, %d, %d) at scale %d/8 is outside the %ux%u output",
                     left, top, right, bottom, scale_num, cinfo.output_width, cinfo.output_height);
        jpeg_destroy_decompress(&cinfo);
        return NULL;
    }
    jpeg_start_decompress(&cinfo);
    JDIMENSION x = (JDIMENSION)left, width = (JDIMENSION)(right - left);
    if (width < cinfo.output_width) jpeg_crop_scanline(&cinfo, &x, &width);  /* widens to iMCU edges */
    if (top > 0) jpeg_skip_scanlines(&cinfo, (JDIMENSION)top);
    int channels = cinfo.output_components;
    size_t stride = (size_t)width * (size_t)channels;
    int rows = bottom - top;
    pixels = malloc(stride * (size_t)rows);
    if (pixels == NULL) {
        jpeg_destroy_decompress(&cinfo);
        return PyErr_NoMemory();
    }
    released = PyEval_SaveThread();
    while ((int)(cinfo.output_scanline) < bottom) {
        JSAMPROW row = pixels + stride * (size_t)(cinfo.output_scanline - (JDIMENSION)top);
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    PyEval_RestoreThread(released);
    released = NULL;
    jpeg_abort_decompress(&cinfo);  /* rows below the window are never read */
    jpeg_destroy_decompress(&cinfo);
    int shift = left - (int)x;
    PyObject *bytes;
    if (size == 0) {
        bytes = PyBytes_FromStringAndSize((const char *)pixels, (Py_ssize_t)(stride * (size_t)rows));
    } else {
        bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size * size * channels);
        if (bytes != NULL) {
            resample(pixels, (int)width, rows, channels, bx0 + shift, by0, bx1 + shift, by1, size, flip,
                     (unsigned char *)PyBytes_AsString(bytes));
        }
    }
    free(pixels);
    if (bytes == NULL) return NULL;
    return Py_BuildValue("(Niii)", bytes, (int)width, rows, shift);
}

static PyMethodDef methods[] = {
    {"header", header, METH_VARARGS, "header(data) -> (width, height, components, colour_ok)"},
    {"decode", decode, METH_VARARGS,
     "decode(data, scale_num, left, top, right, bottom, grey, bx0, by0, bx1, by1, size, flip)"
     " -> (pixels, width, height, x_shift)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jpegwindow", NULL, -1, methods};

PyMODINIT_FUNC PyInit__jpegwindow(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    jpeg_error = PyErr_NewException("harness.runtime._jpegwindow.JpegError", PyExc_ValueError, NULL);
    if (jpeg_error == NULL || PyModule_AddObject(m, "JpegError", jpeg_error) < 0) {
        Py_XDECREF(jpeg_error);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(jpeg_error);
    return m;
}
