package dirtyset

// rowLRU is a shard's dirty rows by key in recency order, the least
// recently written at the back. The list is threaded through the rows
// themselves (Row.lruPrev, Row.lruNext): a separate list entry per row
// would be a second allocation and about 100 bytes more per buffered row.
//
// A row is linked into one live rowLRU at a time. A flush that takes a
// shard's whole rowLRU (takeLocked) reads its rows once, then asks only
// its maps (contains); the row may then be linked into another rowLRU.
//
// The rows are indexed by two maps rather than one map[ID]*Row: a row of a
// single integer key (an ID without text) is in ints, any other in strs.
// A slot of ints is 16 bytes, of strs 24, where one keyed by the whole ID
// is 32: the map is most of a buffered counter row's overhead after the
// row itself. An ID has either its integer or its text (MakeID), so the
// maps never hold one key twice. Each is made on first use: a table's keys
// are of one kind, and a full take replaces the shard's LRU with a new one.
type rowLRU struct {
	ints       map[int64]*Row
	strs       map[string]*Row
	head, tail *Row // most and least recently used
	capacity   int
	onEvict    func(ID, *Row) // called for a row pushed out by Add, and by Purge
}

func newRowLRU(capacity int, onEvict func(ID, *Row)) *rowLRU {
	return &rowLRU{capacity: capacity, onEvict: onEvict}
}

// lookup returns the row of k, if any.
func (l *rowLRU) lookup(k ID) (*Row, bool) {
	if k.s == "" {
		r, ok := l.ints[k.i]
		return r, ok
	}
	r, ok := l.strs[k.s]
	return r, ok
}

// each calls f for every row with its key, in the maps' order.
func (l *rowLRU) each(f func(ID, *Row)) {
	for i, r := range l.ints {
		f(ID{i: i}, r)
	}
	for s, r := range l.strs {
		f(ID{s: s}, r)
	}
}

// Add puts r under k at the front; when that makes the list longer than
// its capacity, the row at the back is removed and passed to onEvict.
func (l *rowLRU) Add(k ID, r *Row) {
	if old, ok := l.lookup(k); ok {
		l.unlink(old)
	} else if l.Len() >= l.capacity {
		if oldest := l.tail; oldest != nil {
			id := oldest.ID()
			l.unlink(oldest)
			l.delete(id)
			defer l.onEvict(id, oldest) // after r is in: as simplelru.LRU did
		}
	}
	switch {
	case k.s != "":
		if l.strs == nil {
			l.strs = map[string]*Row{}
		}
		l.strs[k.s] = r
	case l.ints == nil:
		l.ints = map[int64]*Row{k.i: r}
	default:
		l.ints[k.i] = r
	}
	l.pushFront(r)
}

// Get returns the row of k and moves it to the front.
func (l *rowLRU) Get(k ID) (*Row, bool) {
	r, ok := l.lookup(k)
	if ok && r != l.head {
		l.unlink(r)
		l.pushFront(r)
	}
	return r, ok
}

// Contains reports whether k has a row, without touching its recency.
func (l *rowLRU) Contains(k ID) bool {
	_, ok := l.lookup(k)
	return ok
}

// delete removes k from the maps (not from the list).
func (l *rowLRU) delete(k ID) {
	if k.s == "" {
		delete(l.ints, k.i)
	} else {
		delete(l.strs, k.s)
	}
}

// Len is the number of rows.
func (l *rowLRU) Len() int { return len(l.ints) + len(l.strs) }

// Values returns the rows from the least to the most recently used.
func (l *rowLRU) Values() []*Row {
	rows := make([]*Row, 0, l.Len())
	for r := l.tail; r != nil; r = r.lruPrev {
		rows = append(rows, r)
	}
	return rows
}

// Purge removes every row, passing each to onEvict.
func (l *rowLRU) Purge() {
	l.each(l.onEvict)
	clear(l.ints)
	clear(l.strs)
	l.head, l.tail = nil, nil
}

func (l *rowLRU) pushFront(r *Row) {
	r.lruPrev, r.lruNext = nil, l.head
	if l.head != nil {
		l.head.lruPrev = r
	}
	l.head = r
	if l.tail == nil {
		l.tail = r
	}
}

func (l *rowLRU) unlink(r *Row) {
	if r.lruPrev != nil {
		r.lruPrev.lruNext = r.lruNext
	} else {
		l.head = r.lruNext
	}
	if r.lruNext != nil {
		r.lruNext.lruPrev = r.lruPrev
	} else {
		l.tail = r.lruPrev
	}
	r.lruPrev, r.lruNext = nil, nil
}
