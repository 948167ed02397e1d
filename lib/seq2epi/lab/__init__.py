"""The ground floor, used by every other package: parameters, records, progress, metrics."""
