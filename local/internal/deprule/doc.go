// Package deprule holds, in its test, the dependency rule of the
// architecture: which of the module's packages may import which others,
// NATS, the AWS libraries and the testing package. The test lists the
// module's packages with `go list -deps` and fails naming the import chain
// of each violation.
package deprule
