# Included by _process_core.pyx: turning a call into the bytes a worker reads.

cdef class CallEncoder:
    """Pickles calls for the workers' rings (fields: _process_core.pxd).

    A function's pickle is cached (by the function object, bounded), so a
    call of a function seen before costs one pickle of its arguments; the
    picklers are reused (a small free list: submitting threads may pickle at
    the same time).  Pickling runs Python code: callers do it before they
    enter the pool's atomic sections."""

    def __cinit__(self):
        self.fn_cache = {}
        self.picklers = []

    cdef object dumps(self, obj):
        cdef list picklers = self.picklers
        pickler = picklers.pop() if picklers else ReusablePickler()
        result = pickler.dumps(obj)
        if len(picklers) < 4 and pickler.reusable():
            picklers.append(pickler)
        return result

    cdef bytes fn_pickle(self, fn):
        cdef object found = self.fn_cache.get(fn)
        if found is not None:
            return <bytes>found
        data = function_pickle(fn)
        if data is None:
            return EMPTY
        if len(self.fn_cache) >= FN_CACHE_SIZE:
            self.fn_cache.clear()
        self.fn_cache[fn] = data
        return data

    cdef Call call(self, fn, tuple args, dict kwargs):
        """``fn(*args, **kwargs)``; raises what pickling raises."""
        cdef Call call = Call.__new__(Call)
        cdef bytes fn_bytes = self.fn_pickle(fn)
        call.kind = K_CALL
        if not fn_bytes:
            call.rest, call.buffers = self.dumps((fn, args, kwargs))
        elif kwargs:
            call.rest, call.buffers = self.dumps((args, kwargs))
            call.flags = F_WITH_KWARGS
        elif args:
            call.rest, call.buffers = self.dumps(args)
        else:
            call.rest = EMPTY
            call.flags = F_NO_ARGS
        call.fn_bytes = fn_bytes
        return call

    cdef Call chunk(self, fn, list items, bint star):
        """``list(map(fn, items))`` (``starmap`` when ``star``)."""
        cdef Call call = Call.__new__(Call)
        cdef bytes fn_bytes = self.fn_pickle(fn)
        call.kind = K_CHUNK
        call.flags = F_STAR if star else 0
        if fn_bytes:
            call.rest, call.buffers = self.dumps(items)
        else:
            call.rest, call.buffers = self.dumps((fn, items))
        call.fn_bytes = fn_bytes
        return call
