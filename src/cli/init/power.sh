#!/bin/sh
# Reads the CSV $1 and writes x and x to the power $2.
awk -F, -v n="$2" 'NR == 1 { print "x,x_pow"; next } { print $1 "," $1 ^ n }' "$1"
