package remotecache

import (
	"time"

	digest "github.com/opencontainers/go-digest"
)

// The report Diff (diff.go) gives, with the JSON the command line prints
// for "remotecache diff --json".

// DiffReport is what Diff finds between two cache configs, A and B. Every
// list is non-nil, so that its JSON has [] rather than null; lists are in
// the order of the records (or layers) of the config they come from.
type DiffReport struct {
	Records RecordsDiff `json:"records"`
	Results ResultsDiff `json:"results"`
	Blobs   BlobsDiff   `json:"blobs"`
	// Divergence lists the divergence points: the steps of B whose cache
	// key changed first (see Diff).
	Divergence []DivergencePoint `json:"divergence"`
	// Consequences lists the records of B without inputs that are new only
	// because an upstream step changed (see Diff).
	Consequences []Consequence `json:"consequences"`
}

// Empty tells whether the two configs hold the same records, results and
// blobs.
func (r *DiffReport) Empty() bool {
	return len(r.Records.OnlyA)+len(r.Records.OnlyB)+
		len(r.Results.OnlyA)+len(r.Results.OnlyB)+len(r.Results.Changed)+
		len(r.Blobs.OnlyA)+len(r.Blobs.OnlyB)+len(r.Blobs.Changed)+
		len(r.Divergence)+len(r.Consequences) == 0
}

// RecordsDiff compares the records of A and B by identity (see Diff).
type RecordsDiff struct {
	// Common is how many identities both configs have.
	Common int          `json:"common"`
	OnlyA  []DiffRecord `json:"onlyA"`
	OnlyB  []DiffRecord `json:"onlyB"`
}

// DiffRecord is a record of A or of B, with its input links.
type DiffRecord struct {
	Record RecordRef   `json:"record"`
	Inputs []DiffInput `json:"inputs"`
}

// DiffInput is one input link of a record: its slot, its selector, its
// source in the record's config and, when the other config has a record of
// the source's identity, that record (InA for a record of B, InB for one
// of A; the lowest index if several).
type DiffInput struct {
	Slot     int        `json:"slot"`
	Selector string     `json:"selector,omitempty"`
	Source   RecordRef  `json:"source"`
	InA      *RecordRef `json:"inA,omitempty"`
	InB      *RecordRef `json:"inB,omitempty"`
}

// ResultsDiff compares the results of the records of A and B: for a
// record (identity) in both, the set of its results (CreatedAt and blobs)
// in A against that in B.
type ResultsDiff struct {
	// Common is how many records in both have the same results, at least
	// one.
	Common int `json:"common"`
	// OnlyA are the results of records only in A, and of records in both
	// that have results in A and none in B; OnlyB the other way round.
	OnlyA []DiffResult `json:"onlyA"`
	OnlyB []DiffResult `json:"onlyB"`
	// Changed are the records in both with results on each side, but not
	// the same.
	Changed []ResultChange `json:"changed"`
}

// DiffResult is one result of a record.
type DiffResult struct {
	Record RecordRef `json:"record"`
	// Result is its index among the record's Results, then its
	// ChainedResults.
	Result    int             `json:"result"`
	CreatedAt time.Time       `json:"createdAt"`
	Blobs     []digest.Digest `json:"blobs"`
	// Size is the bytes of Blobs, -1 if the size of one is not known.
	Size int64 `json:"size"`
}

// ResultChange is a record of both configs whose results differ.
type ResultChange struct {
	A []DiffResult `json:"a"`
	B []DiffResult `json:"b"`
}

// BlobsDiff compares the distinct layer blobs of A and B by digest.
type BlobsDiff struct {
	Common int        `json:"common"`
	OnlyA  []BlobSize `json:"onlyA"`
	OnlyB  []BlobSize `json:"onlyB"`
	// Changed are blobs in both whose sizes, known on both sides, differ.
	Changed []BlobChange `json:"changed"`
	// OnlyABytes and OnlyBBytes add up the known sizes of OnlyA and OnlyB.
	OnlyABytes int64 `json:"onlyABytes"`
	OnlyBBytes int64 `json:"onlyBBytes"`
}

// BlobChange is a blob whose size A and B give differently.
type BlobChange struct {
	Digest digest.Digest `json:"digest"`
	SizeA  int64         `json:"sizeA"`
	SizeB  int64         `json:"sizeB"`
}

// DivergencePoint is a record of B where B's cache first leaves A's.
type DivergencePoint struct {
	// Record is the record in B.
	Record RecordRef `json:"record"`
	// Inputs are its links, each source in B and in A (InA).
	Inputs []DiffInput `json:"inputs"`
	// Was lists the records of A that are not in B and have exactly the
	// same inputs: the step as A had it, before its own key changed. Empty
	// for a record without inputs.
	Was []RecordRef `json:"was"`
}

// Consequence is a record of B without inputs, new in B, that is new only
// because an upstream step changed: a content-keyed root (see Diff).
type Consequence struct {
	Record RecordRef `json:"record"`
	// Beside lists where it is linked beside the new sources it follows
	// from.
	Beside []ConsequenceLink `json:"beside"`
}

// ConsequenceLink is an input slot that a Consequence's record is linked
// into: the record of B that has the slot, the slot, and the slot's other
// sources that are new in B.
type ConsequenceLink struct {
	Into    RecordRef   `json:"into"`
	Slot    int         `json:"slot"`
	Sources []RecordRef `json:"sources"`
}
