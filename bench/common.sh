# Helpers the bench scripts share; sourced, not run.

# The median of the numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Reads every file of a tree once, so the runs that follow hit the page cache.
warm() { find "$1" -type f -print0 | xargs -0 cat > /dev/null; }

# Median wall seconds and peak RSS (MiB) of the `/usr/bin/time -f "%e %M"`
# lines in FILE. GNU time also writes "Command exited with non-zero
# status 1" when a scanner finds something; those lines are skipped.
wall_median() { grep -E '^[0-9]' "$1" | cut -d' ' -f1 | median; }
rss_median_mib() { grep -E '^[0-9]' "$1" | cut -d' ' -f2 | median | awk '{printf "%.0f", $1/1024}'; }
