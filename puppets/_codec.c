/* puppets._codec: the MSNP line and payload parser of puppets/command.py in C.
 *
 * Optional: setup.py builds it with optional=True, and puppets/command.py falls back to
 * its pure-Python CommandReader._drain when it is missing. Both must behave identically
 * (same commands, same errors, same reader state); tests/test_codec_accel.py checks that
 * over random and hostile byte streams. Only drain() lives here: the reader's state, its
 * feed() and the Command class stay in Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

#ifndef Py_T_OBJECT_EX
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif
#ifndef Py_READONLY
#define Py_READONLY READONLY
#endif

/* Set by setup(): the Command class, ProtocolError, and where Command keeps its slots. */
static PyObject *command_type = NULL;
static PyObject *protocol_error = NULL;
static Py_ssize_t off_name, off_trid, off_args, off_payload;

static PyObject *s_pending, *s_payload_commands, *s_no_trid, *s_max_line, *s_max_payload;
static PyObject *s_ok, *s_empty_bytes;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* Store a new reference in a slot of a Command, dropping what was there. */
static void
slot_set(PyObject *obj, Py_ssize_t off, PyObject *value)
{
    PyObject *old = SLOT(obj, off);
    SLOT(obj, off) = value;
    Py_XDECREF(old);
}

static int
slot_offset(PyObject *type, const char *name, Py_ssize_t *out)
{
    PyObject *dict = ((PyTypeObject *)type)->tp_dict;
    PyObject *descr = PyDict_GetItemString(dict, name); /* borrowed */
    if (descr == NULL || !PyObject_TypeCheck(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "Command.%s is not a slot", name);
        return -1;
    }
    PyMemberDef *m = ((PyMemberDescrObject *)descr)->d_member;
    if (m->type != Py_T_OBJECT_EX || (m->flags & Py_READONLY)) {
        PyErr_Format(PyExc_TypeError, "Command.%s is not a writable object slot", name);
        return -1;
    }
    *out = m->offset;
    return 0;
}

static PyObject *
codec_setup(PyObject *module, PyObject *args)
{
    PyObject *ctype, *perr;
    if (!PyArg_ParseTuple(args, "O!O:setup", &PyType_Type, &ctype, &perr))
        return NULL;
    if (slot_offset(ctype, "name", &off_name) < 0 || slot_offset(ctype, "trid", &off_trid) < 0 ||
        slot_offset(ctype, "args", &off_args) < 0 ||
        slot_offset(ctype, "payload", &off_payload) < 0)
        return NULL;
    if (((PyTypeObject *)ctype)->tp_flags & Py_TPFLAGS_IS_ABSTRACT) {
        PyErr_SetString(PyExc_TypeError, "Command is abstract");
        return NULL;
    }
    Py_XSETREF(command_type, Py_NewRef(ctype));
    Py_XSETREF(protocol_error, Py_NewRef(perr));
    Py_RETURN_NONE;
}

/* A Command as object.__new__(Command) makes it, all four slots set. Steals the refs. */
static PyObject *
new_command(PyObject *name, PyObject *trid, PyObject *args, PyObject *payload)
{
    PyTypeObject *tp = (PyTypeObject *)command_type;
    PyObject *cmd = tp->tp_alloc(tp, 0);
    if (cmd == NULL) {
        Py_DECREF(name);
        Py_DECREF(trid);
        Py_DECREF(args);
        Py_DECREF(payload);
        return NULL;
    }
    SLOT(cmd, off_name) = name;
    SLOT(cmd, off_trid) = trid;
    SLOT(cmd, off_args) = args;
    SLOT(cmd, off_payload) = payload;
    return cmd;
}

/* An attribute of the reader as a Py_ssize_t, clamped (Python compares unbounded ints). */
static int
reader_ssize(PyObject *reader, PyObject *attr, Py_ssize_t *out, PyObject **obj)
{
    PyObject *v = PyObject_GetAttr(reader, attr);
    if (v == NULL)
        return -1;
    int overflow = 0;
    long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (n == -1 && PyErr_Occurred()) {
        Py_DECREF(v);
        return -1;
    }
    if (overflow > 0 || n > PY_SSIZE_T_MAX)
        *out = PY_SSIZE_T_MAX;
    else if (overflow < 0 || n < -PY_SSIZE_T_MAX)
        *out = -PY_SSIZE_T_MAX;
    else
        *out = (Py_ssize_t)n;
    if (obj != NULL)
        *obj = v;
    else
        Py_DECREF(v);
    return 0;
}

static void
protocol_fail(PyObject *msg)
{
    if (msg != NULL) {
        PyErr_SetObject(protocol_error, msg);
        Py_DECREF(msg);
    }
}

/* str.isdigit() of a str (any Unicode digit, as the pure-Python check sees it). */
static int
unicode_isdigit(PyObject *s)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (n == 0)
        return 0;
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!Py_UNICODE_ISDIGIT(PyUnicode_READ(kind, data, i)))
            return 0;
    return 1;
}

static int
ascii_digits(const char *p, Py_ssize_t n)
{
    if (n == 0)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

/* Decode one argument: strictly valid UTF-8 decodes the same with "replace", and the
 * pieces between spaces decode as the whole line does (a space is never part of a
 * multi-byte sequence and ends any invalid one). */
static inline PyObject *
decode_part(const char *p, Py_ssize_t n)
{
    return PyUnicode_DecodeUTF8(p, n, "replace");
}

/* Take the length off a payload command (CommandReader._start_payload). Returns 0 and
 * sets *length (-1: none, wait for nothing), or -1 with ProtocolError set. */
static int
start_payload(PyObject *cmd, PyObject *args, PyObject *max_payload_obj, Py_ssize_t max_payload,
              Py_ssize_t *length)
{
    PyObject *name = SLOT(cmd, off_name);
    Py_ssize_t nargs = PyList_GET_SIZE(args);
    if (nargs == 0) {
        protocol_fail(PyUnicode_FromFormat("%U without a payload length", name));
        return -1;
    }
    PyObject *arg = PyList_GET_ITEM(args, nargs - 1);
    Py_INCREF(arg);
    if (PyList_SetSlice(args, nargs - 1, nargs, NULL) < 0) {
        Py_DECREF(arg);
        return -1;
    }
    Py_ssize_t alen = PyUnicode_GET_LENGTH(arg);
    int ok = PyUnicode_IS_ASCII(arg) && ascii_digits((const char *)PyUnicode_DATA(arg), alen);
    PyObject *head = PyUnicode_Substring(arg, 0, alen < 20 ? alen : 20);
    Py_DECREF(arg);
    if (head == NULL)
        return -1;
    if (!ok) {
        protocol_fail(
            PyUnicode_FromFormat("%U payload length is not a number: %R", name, head));
        Py_DECREF(head);
        return -1;
    }
    long long n = -1;
    if (alen <= 18) {
        const char *d = (const char *)PyUnicode_DATA(head);
        n = 0;
        for (Py_ssize_t i = 0; i < alen; i++)
            n = n * 10 + (d[i] - '0');
    }
    if (n < 0 || n > max_payload) {
        protocol_fail(PyUnicode_FromFormat("%U payload of %U bytes is over the %S-byte limit",
                                           name, head, max_payload_obj));
        Py_DECREF(head);
        return -1;
    }
    Py_DECREF(head);
    *length = (Py_ssize_t)n;
    return 0;
}

/* drain(reader, buf, out): CommandReader._drain(buf, out) of puppets/command.py. */
static PyObject *
codec_drain(PyObject *module, PyObject *const *argv, Py_ssize_t argc)
{
    if (argc != 3 || !PyByteArray_Check(argv[1]) || !PyList_Check(argv[2])) {
        PyErr_SetString(PyExc_TypeError, "drain(reader, buf: bytearray, out: list)");
        return NULL;
    }
    if (command_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "puppets._codec.setup() was not called");
        return NULL;
    }
    PyObject *reader = argv[0], *buf = argv[1], *out = argv[2];
    PyObject *pending = NULL, *payload_commands = NULL, *no_trid = NULL;
    PyObject *max_line_obj = NULL, *max_payload_obj = NULL;
    PyObject *result = NULL;
    int pending_changed = 0;
    Py_ssize_t max_line, max_payload;
    Py_buffer view;
    Py_ssize_t pos = 0;

    pending = PyObject_GetAttr(reader, s_pending);
    if (pending == NULL)
        return NULL;
    payload_commands = PyObject_GetAttr(reader, s_payload_commands);
    if (payload_commands == NULL)
        goto done_nobuf;
    no_trid = PyObject_GetAttr(reader, s_no_trid);
    if (no_trid == NULL)
        goto done_nobuf;
    if (reader_ssize(reader, s_max_line, &max_line, &max_line_obj) < 0 ||
        reader_ssize(reader, s_max_payload, &max_payload, &max_payload_obj) < 0)
        goto done_nobuf;
    /* The export keeps the bytearray from being resized under us. */
    if (PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE) < 0)
        goto done_nobuf;
    const char *data = (const char *)view.buf;
    const Py_ssize_t size = view.len;

    for (;;) {
        if (pending != Py_None) {
            if (!PyTuple_Check(pending) || PyTuple_GET_SIZE(pending) != 2) {
                PyErr_SetString(PyExc_TypeError, "CommandReader._pending is not (cmd, length)");
                goto done;
            }
            PyObject *cmd = PyTuple_GET_ITEM(pending, 0);
            Py_ssize_t length = PyLong_AsSsize_t(PyTuple_GET_ITEM(pending, 1));
            if (length == -1 && PyErr_Occurred())
                goto done;
            if (size - pos < length)
                break;
            PyObject *payload = PyBytes_FromStringAndSize(data + pos, length);
            if (payload == NULL)
                goto done;
            if (Py_TYPE(cmd) == (PyTypeObject *)command_type) {
                slot_set(cmd, off_payload, payload);
            } else {
                int r = PyObject_SetAttrString(cmd, "payload", payload);
                Py_DECREF(payload);
                if (r < 0)
                    goto done;
            }
            pos += length;
            Py_INCREF(cmd);
            Py_SETREF(pending, Py_NewRef(Py_None));
            pending_changed = 1;
            int r = PyList_Append(out, cmd);
            Py_DECREF(cmd);
            if (r < 0)
                goto done;
            continue;
        }
        const char *nl = memchr(data + pos, '\n', (size_t)(size - pos));
        if (nl == NULL) {
            if (size - pos > max_line) {
                protocol_fail(PyUnicode_FromFormat("line longer than %S bytes", max_line_obj));
                goto done;
            }
            break;
        }
        Py_ssize_t end = nl - data;
        if (end - pos > max_line) {
            protocol_fail(PyUnicode_FromFormat("line longer than %S bytes", max_line_obj));
            goto done;
        }
        const char *line = data + pos;
        Py_ssize_t len = (end > pos && data[end - 1] == '\r') ? end - 1 - pos : end - pos;
        pos = end + 1;
        if (len == 0)
            continue; /* stray blank line */

        /* The name: 1-4 ASCII letters or digits up to the first space. */
        const char *sp = memchr(line, ' ', (size_t)len);
        Py_ssize_t name_len = sp ? sp - line : len;
        int name_ok = name_len >= 1 && name_len <= 4;
        int name_digits = name_ok;
        for (Py_ssize_t i = 0; name_ok && i < name_len; i++) {
            unsigned char c = (unsigned char)line[i];
            int digit = c >= '0' && c <= '9';
            name_digits &= digit;
            name_ok = digit || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        }
        if (!name_ok) {
            PyObject *raw = PyBytes_FromStringAndSize(line, len < 60 ? len : 60);
            if (raw != NULL) {
                protocol_fail(PyUnicode_FromFormat("not an MSNP command: %R", raw));
                Py_DECREF(raw);
            }
            goto done;
        }
        PyObject *name = PyUnicode_DecodeASCII(line, name_len, NULL);
        if (name == NULL)
            goto done;

        /* Arguments: the pieces between single spaces, empty ones kept. */
        Py_ssize_t nparts = 1;
        for (const char *q = sp; q != NULL; q = memchr(q + 1, ' ', (size_t)(line + len - q - 1)))
            nparts++;
        const char *p = sp ? sp + 1 : line + len; /* start of the next piece */
        PyObject *trid = Py_None;
        Py_INCREF(trid);
        Py_ssize_t nargs = nparts - 1;
        if (nargs > 0) {
            int r = PySet_Contains(no_trid, name);
            if (r < 0) {
                Py_DECREF(name);
                Py_DECREF(trid);
                goto done;
            }
            if (!r) {
                const char *e = memchr(p, ' ', (size_t)(line + len - p));
                Py_ssize_t flen = (e ? e : line + len) - p;
                if (flen < 10 && ascii_digits(p, flen)) {
                    long v = 0;
                    for (Py_ssize_t i = 0; i < flen; i++)
                        v = v * 10 + (p[i] - '0');
                    Py_SETREF(trid, PyLong_FromLong(v));
                    if (trid == NULL) {
                        Py_DECREF(name);
                        goto done;
                    }
                    p = e ? e + 1 : line + len;
                    nargs--;
                }
            }
        }
        PyObject *args = PyList_New(nargs);
        if (args == NULL) {
            Py_DECREF(name);
            Py_DECREF(trid);
            goto done;
        }
        for (Py_ssize_t i = 0; i < nargs; i++) {
            const char *e = memchr(p, ' ', (size_t)(line + len - p));
            const char *stop = e ? e : line + len;
            PyObject *s = decode_part(p, stop - p);
            if (s == NULL) {
                Py_DECREF(name);
                Py_DECREF(trid);
                Py_DECREF(args);
                goto done;
            }
            PyList_SET_ITEM(args, i, s);
            p = stop + 1;
        }
        PyObject *cmd = new_command(name, trid, Py_NewRef(args), Py_NewRef(Py_None));
        if (cmd == NULL) {
            Py_DECREF(args);
            goto done;
        }

        /* Payload commands (``ADL t OK`` / ``RML t OK`` answer a payload with none), and
         * error replies whose only argument is a number (a payload length). */
        int is_payload = PySet_Contains(payload_commands, name);
        if (is_payload < 0)
            goto fail_cmd;
        if (is_payload && nargs > 0) {
            int r = PyUnicode_Compare(PyList_GET_ITEM(args, nargs - 1), s_ok);
            if (r == -1 && PyErr_Occurred())
                goto fail_cmd;
            if (r == 0)
                is_payload = 0;
        }
        if (!is_payload && nargs == 1 && name_digits &&
            unicode_isdigit(PyList_GET_ITEM(args, 0)))
            is_payload = 1;
        if (is_payload) {
            Py_ssize_t length;
            if (start_payload(cmd, args, max_payload_obj, max_payload, &length) < 0)
                goto fail_cmd;
            if (length == 0) {
                slot_set(cmd, off_payload, Py_NewRef(s_empty_bytes));
            } else {
                PyObject *n = PyLong_FromSsize_t(length);
                if (n == NULL)
                    goto fail_cmd;
                PyObject *t = PyTuple_Pack(2, cmd, n);
                Py_DECREF(n);
                if (t == NULL)
                    goto fail_cmd;
                Py_SETREF(pending, t);
                pending_changed = 1;
                Py_DECREF(args);
                Py_DECREF(cmd);
                continue;
            }
        }
        Py_DECREF(args);
        int r = PyList_Append(out, cmd);
        Py_DECREF(cmd);
        if (r < 0)
            goto done;
        continue;
    fail_cmd:
        Py_DECREF(args);
        Py_DECREF(cmd);
        goto done;
    }
    result = Py_NewRef(Py_None);

done:
    PyBuffer_Release(&view);
    {
        /* As the Python version's finally: the parsed bytes leave the buffer. */
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        if (pos > 0 && PySequence_DelSlice(buf, 0, pos) < 0)
            Py_CLEAR(result);
        if (et != NULL) {
            PyErr_Clear();
            PyErr_Restore(et, ev, tb);
        }
    }
done_nobuf:
    if (pending_changed) {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        if (PyObject_SetAttr(reader, s_pending, pending) < 0)
            Py_CLEAR(result);
        if (et != NULL) {
            PyErr_Clear();
            PyErr_Restore(et, ev, tb);
        }
    }
    Py_XDECREF(pending);
    Py_XDECREF(payload_commands);
    Py_XDECREF(no_trid);
    Py_XDECREF(max_line_obj);
    Py_XDECREF(max_payload_obj);
    return result;
}

static PyMethodDef codec_methods[] = {
    {"setup", codec_setup, METH_VARARGS,
     "setup(Command, ProtocolError): the class drain() makes and the error it raises."},
    {"drain", (PyCFunction)(void (*)(void))codec_drain, METH_FASTCALL,
     "drain(reader, buf, out): CommandReader._drain in C."},
    {NULL, NULL, 0, NULL},
};

static int
codec_exec(PyObject *module)
{
#define INTERN(var, text)                                                                     \
    if ((var = PyUnicode_InternFromString(text)) == NULL)                                     \
        return -1;
    INTERN(s_pending, "_pending");
    INTERN(s_payload_commands, "payload_commands");
    INTERN(s_no_trid, "no_trid");
    INTERN(s_max_line, "max_line");
    INTERN(s_max_payload, "max_payload");
    INTERN(s_ok, "OK");
#undef INTERN
    if ((s_empty_bytes = PyBytes_FromStringAndSize(NULL, 0)) == NULL)
        return -1;
    return 0;
}

static PyModuleDef_Slot codec_slots[] = {
    {Py_mod_exec, codec_exec},
    {0, NULL},
};

static struct PyModuleDef codec_module = {
    PyModuleDef_HEAD_INIT, "puppets._codec", "MSNP command parser in C (optional).", 0,
    codec_methods, codec_slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__codec(void)
{
    return PyModuleDef_Init(&codec_module);
}
