/* Decode only the window of a JPEG that a crop needs, the way tf.data's decode_and_crop_jpeg does
 * (tensorflow/core/lib/jpeg/jpeg_mem.cc), with libjpeg-turbo's region API:
 *   - jpeg_skip_scanlines: rows above the window are entropy-decoded only (no IDCT, no upsampling,
 *     no colour conversion); rows below it are never read;
 *   - jpeg_crop_scanline: only the iMCU columns the window covers go through IDCT and colour conversion;
 *   - scale_num/8 DCT scaling: a window that is downscaled anyway is decoded at a reduced size;
 * then the window is resampled to S x S exactly as Pillow's antialiased bilinear resize would resample
 * the full decode, and mirrored when asked.
 * Pillow's decoder has none of the three (only 1/2, 1/4, 1/8 draft scaling).
 *
 * Python API (module harness.runtime._jpegwindow, CPython limited API, no numpy C API):
 *   header(data) -> (width, height, components, colour_ok)
 *   decode(data, scale_num, left, top, right, bottom, grey, bx0, by0, bx1, by1, size, flip)
 *     -> (pixels, width, height, x_shift)
 *   with size > 0: pixels are S*S*C bytes, the box (bx0, by0)-(bx1, by1) (pixels of the scaled image,
 *   as C floats, as Pillow takes a box) resampled to S x S; with size == 0: the decoded window itself,
 *   width x height, whose first column is x_shift pixels left of `left` (iMCU alignment).
 * See harness/runtime/jpeg.py for the contract; that module is the only caller. */
#define PY_SSIZE_T_CLEAN
#define Py_LIMITED_API 0x030A0000
#include <Python.h>

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
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

/* Resampling, exactly as Pillow's Image.resize(size, BILINEAR, box) (Pillow src/libImaging/Resample.c:
 * precompute_coeffs, normalize_coeffs_8bpc, ImagingResampleHorizontal/Vertical_8bpc): a triangle filter
 * widened by the shrink factor (antialiased), coefficients in 22-bit fixed point, a horizontal pass into
 * uint8 rows, then a vertical pass. Coordinates are the full (scaled) image's, so the taps, their
 * clamping at the image's edges and their rounding are those of a resize of the full decode; the window
 * must hold every pixel a tap reads. */
#define PRECISION_BITS (32 - 8 - 2)

/* Pillow's clip8, without the clipping: the triangle filter's weights are >= 0 and each was rounded by at
 * most 1/2 unit, so a sum lies in [2^21, 255 (2^22 + ksize / 2) + 2^21] and shifts to 0..255. */
#define TO_U8(v) ((unsigned char)((v) >> PRECISION_BITS))

/* Taps of `out` outputs over [in0, in1) of an axis of `in_size` pixels: bounds (first, count) and
 * ksize coefficients each (zero past an output's count); *kmax: the largest count. Returns ksize, or 0
 * when out of memory. */
static int coefficients(int in_size, float in0, float in1, int out, int **bounds_out, int **kk_out, int *kmax) {
    double scale = (double)(in1 - in0) / out, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    int *bounds = malloc(sizeof(int) * 2 * (size_t)out), *kk = malloc(sizeof(int) * (size_t)out * ksize);
    double *k = malloc(sizeof(double) * (size_t)ksize);
    if (bounds == NULL || kk == NULL || k == NULL) {
        free(bounds);
        free(kk);
        free(k);
        return 0;
    }
    *kmax = 1;
    for (int xx = 0; xx < out; xx++) {
        double center = in0 + (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax;
        if (xmin < 0) xmin = 0;
        xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double d = fabs((x + xmin - center + 0.5) * ss);
            k[x] = d < 1.0 ? 1.0 - d : 0.0;
            ww += k[x];
        }
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? k[x] / ww : k[x]) : 0.0;
            kk[xx * ksize + x] = v < 0 ? (int)(-0.5 + v * (1 << PRECISION_BITS)) : (int)(0.5 + v * (1 << PRECISION_BITS));
        }
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
        if (xmax > *kmax) *kmax = xmax;
    }
    free(k);
    *bounds_out = bounds;
    *kk_out = kk;
    return ksize;
}

/* The horizontal pass over one RGB row with `taps` taps per output (a constant where it is called, so the
 * loop unrolls; taps past an output's count have weight 0, and the row is padded so they can be read),
 * written mirrored when flip (the vertical pass then keeps columns where they are). */
static inline void horizontal_rgb(const unsigned char *restrict row, unsigned char *restrict out, const int *xb,
                                  const int *xk, int size, int ox, int ksize, const int taps, int flip) {
    for (int xx = 0; xx < size; xx++) {
        const int *restrict k = xk + xx * ksize;
        const unsigned char *restrict p = row + (size_t)(xb[2 * xx] - ox) * 3;
        int s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
        for (int x = 0; x < taps; x++) {
            s0 += p[3 * x] * k[x];
            s1 += p[3 * x + 1] * k[x];
            s2 += p[3 * x + 2] * k[x];
        }
        unsigned char *o = out + 3 * (flip ? size - 1 - xx : xx);
        o[0] = TO_U8(s0);
        o[1] = TO_U8(s1);
        o[2] = TO_U8(s2);
    }
}

/* src: the window, w x h x c, whose pixel (0, 0) is pixel (ox, oy) of the full image (full_w x full_h).
 * Writes size x size x c to dst, each row mirrored when flip. Returns 0; -1 when out of memory, -2 when a
 * tap falls outside the window. */
/* x86-64: an AVX2 clone beside the baseline one, picked at load time (GCC's function multiversioning):
 * the vertical pass's 8-bit by 32-bit multiply-adds need AVX2's vpmulld to vectorise well. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define MULTIVERSION
#endif

MULTIVERSION
static int resample(const unsigned char *src, int w, int h, int c, int ox, int oy, int full_w, int full_h,
                    const float box[4], int size, int flip, unsigned char *dst) {
    int *xb = NULL, *xk = NULL, *yb = NULL, *yk = NULL, status = -1;
    unsigned char *temp = NULL;
    int *acc = NULL;
    int xmax = 0, ymax = 0;
    int kx = coefficients(full_w, box[0], box[2], size, &xb, &xk, &xmax);
    int ky = kx ? coefficients(full_h, box[1], box[3], size, &yb, &yk, &ymax) : 0;
    if (!ky) goto done;
    int first = yb[0], last = yb[2 * size - 2] + yb[2 * size - 1];  /* the rows the vertical pass reads */
    status = -2;  /* a tap outside the window: the caller's margins were too small */
    if (first < oy || last > oy + h) goto done;
    for (int xx = 0; xx < size; xx++)
        if (xb[2 * xx] < ox || xb[2 * xx] + xb[2 * xx + 1] > ox + w) goto done;
    status = -1;
    temp = malloc((size_t)(last - first) * size * c);
    acc = malloc(sizeof(int) * (size_t)size * c);
    if (temp == NULL || acc == NULL) goto done;
    for (int y = first; y < last; y++) {  /* horizontal pass: full-image row y */
        const unsigned char *restrict row = src + (size_t)(y - oy) * w * c;
        unsigned char *restrict out = temp + (size_t)(y - first) * size * c;
        switch (c == 3 ? xmax : 0) {
        case 1: case 2: horizontal_rgb(row, out, xb, xk, size, ox, kx, 2, flip); break;
        case 3: horizontal_rgb(row, out, xb, xk, size, ox, kx, 3, flip); break;
        case 4: horizontal_rgb(row, out, xb, xk, size, ox, kx, 4, flip); break;
        case 5: horizontal_rgb(row, out, xb, xk, size, ox, kx, 5, flip); break;
        case 6: horizontal_rgb(row, out, xb, xk, size, ox, kx, 6, flip); break;
        default:
            for (int xx = 0; xx < size; xx++) {
                const int *k = xk + xx * kx;
                const unsigned char *p = row + (size_t)(xb[2 * xx] - ox) * c;
                unsigned char *o = out + (size_t)c * (flip ? size - 1 - xx : xx);
                int n = xb[2 * xx + 1];
                for (int ch = 0; ch < c; ch++) {
                    int ss = 1 << (PRECISION_BITS - 1);
                    for (int x = 0; x < n; x++) ss += p[x * c + ch] * k[x];
                    o[ch] = TO_U8(ss);
                }
            }
        }
    }
    for (int yy = 0; yy < size; yy++) {  /* vertical pass */
        const int *k = yk + yy * ky;
        int ymin = yb[2 * yy] - first, n = yb[2 * yy + 1];
        int *restrict sums = acc;
        for (int j = 0; j < size * c; j++) sums[j] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < n; y++) {
            const unsigned char *restrict row = temp + (size_t)(ymin + y) * size * c;
            int weight = k[y];
            for (int j = 0; j < size * c; j++) sums[j] += row[j] * weight;
        }
        unsigned char *restrict out = dst + (size_t)yy * size * c;
        for (int j = 0; j < size * c; j++) out[j] = TO_U8(sums[j]);
    }
    status = 0;
done:
    free(xb);
    free(xk);
    free(yb);
    free(yk);
    free(temp);
    free(acc);
    return status;
}

static PyObject *decode(PyObject *self, PyObject *args) {
    const char *buf;
    Py_ssize_t len;
    int scale_num, left, top, right, bottom, grey, size, flip;
    float box[4];
    if (!PyArg_ParseTuple(args, "y#iiiiipffffip", &buf, &len, &scale_num, &left, &top, &right, &bottom, &grey,
                          &box[0], &box[1], &box[2], &box[3], &size, &flip))
        return NULL;
    if (size < 0 || size > 65535 || !(box[2] > box[0]) || !(box[3] > box[1])) {
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
    JDIMENSION cinfo_width = cinfo.output_width, cinfo_height = cinfo.output_height;  /* before the crop */
    jpeg_start_decompress(&cinfo);
    JDIMENSION x = (JDIMENSION)left, width = (JDIMENSION)(right - left);
    if (width < cinfo.output_width) jpeg_crop_scanline(&cinfo, &x, &width);  /* widens to iMCU edges */
    if (top > 0) jpeg_skip_scanlines(&cinfo, (JDIMENSION)top);
    int channels = cinfo.output_components;
    size_t stride = (size_t)width * (size_t)channels;
    int rows = bottom - top;
    /* padded: the horizontal pass reads a row's zero-weight taps up to 7 pixels past its end */
    pixels = malloc(stride * (size_t)rows + 64);
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
            int status = resample(pixels, (int)width, rows, channels, (int)x, top, (int)cinfo_width, (int)cinfo_height,
                                  box, size, flip, (unsigned char *)PyBytes_AsString(bytes));
            if (status != 0) {
                Py_DECREF(bytes);
                bytes = NULL;
                if (status == -1) PyErr_NoMemory();
                else PyErr_SetString(PyExc_ValueError, "the window does not hold every pixel the resampling reads");
            }
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
