package dirtyset

// rowLRU is a shard's dirty rows by key in recency order, the least
// recently written at the back. The list is threaded through the rows
// themselves (Row.lruPrev, Row.lruNext): a separate list entry per row
// would be a second allocation and about 100 bytes more per buffered row.
//
// A row is linked into one live rowLRU at a time. A flush that takes a
// shard's whole rowLRU (takeLocked) reads its rows once, then asks only
// its map (contains); the row may then be linked into another rowLRU.
type rowLRU struct {
	items      map[ID]*Row
	head, tail *Row // most and least recently used
	capacity   int
	onEvict    func(ID, *Row) // called for a row pushed out by Add, and by Purge
}

func newRowLRU(capacity int, onEvict func(ID, *Row)) *rowLRU {
	return &rowLRU{items: map[ID]*Row{}, capacity: capacity, onEvict: onEvict}
}

// Add puts r under k at the front; when that makes the list longer than
// its capacity, the row at the back is removed and passed to onEvict.
func (l *rowLRU) Add(k ID, r *Row) {
	if old, ok := l.items[k]; ok {
		l.unlink(old)
	} else if len(l.items) >= l.capacity {
		if oldest := l.tail; oldest != nil {
			l.unlink(oldest)
			delete(l.items, oldest.id)
			defer l.onEvict(oldest.id, oldest) // after r is in: as simplelru.LRU did
		}
	}
	l.items[k] = r
	l.pushFront(r)
}

// Get returns the row of k and moves it to the front.
func (l *rowLRU) Get(k ID) (*Row, bool) {
	r, ok := l.items[k]
	if ok && r != l.head {
		l.unlink(r)
		l.pushFront(r)
	}
	return r, ok
}

// Contains reports whether k has a row, without touching its recency.
func (l *rowLRU) Contains(k ID) bool {
	_, ok := l.items[k]
	return ok
}

// Len is the number of rows.
func (l *rowLRU) Len() int { return len(l.items) }

// Values returns the rows from the least to the most recently used.
func (l *rowLRU) Values() []*Row {
	rows := make([]*Row, 0, len(l.items))
	for r := l.tail; r != nil; r = r.lruPrev {
		rows = append(rows, r)
	}
	return rows
}

// Purge removes every row, passing each to onEvict.
func (l *rowLRU) Purge() {
	for k, r := range l.items {
		l.onEvict(k, r)
	}
	clear(l.items)
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
