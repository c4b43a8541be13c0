package main

// The CPU time a load costs, read from /proc (Linux) for charterd's
// processes and from getrusage for charterbench itself, before and after a
// phase: registrations/s moves with whatever else the machine runs, the
// CPU per registration much less.

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuUse is CPU time spent during a load, from /proc (Linux); known is
// false elsewhere.
type cpuUse struct {
	known           bool
	charterd, bench time.Duration // the network's processes; this process
	machine         time.Duration // every CPU's busy time
	cores           int
	wall            time.Duration
}

// cpuSample is a reading of the counters cpuUse is the difference of.
type cpuSample struct {
	ok              bool
	at              time.Time
	charterd, bench time.Duration
	machine         time.Duration
	cores           int
}

func readCPU(pids []int) cpuSample {
	s := cpuSample{at: time.Now(), ok: len(pids) > 0}
	for _, pid := range pids {
		d, ok := processCPU(pid)
		s.charterd += d
		s.ok = s.ok && ok
	}
	d, ok := selfCPU()
	s.bench, s.ok = d, s.ok && ok
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		s.ok = false
		return s
	}
	busy, cores, ok := parseProcStat(string(b))
	s.machine, s.cores, s.ok = busy, cores, s.ok && ok
	return s
}

func (s cpuSample) since(before cpuSample) cpuUse {
	if !s.ok || !before.ok {
		return cpuUse{}
	}
	return cpuUse{known: true, charterd: s.charterd - before.charterd, bench: s.bench - before.bench,
		machine: s.machine - before.machine, cores: s.cores, wall: s.at.Sub(before.at)}
}

// parseProcStat reads /proc/stat's "cpu" line: the busy time of all CPUs
// (every field but idle and iowait; guest time is already in user), and
// how many "cpuN" lines there are.
func parseProcStat(stat string) (time.Duration, int, bool) {
	var busy time.Duration
	found, cores := false, 0
	for _, line := range strings.Split(stat, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] != "cpu" {
			if strings.HasPrefix(f[0], "cpu") {
				cores++
			}
			continue
		}
		if len(f) < 8 {
			return 0, 0, false
		}
		for i, v := range f[1:min(len(f), 9)] {
			if i == 3 || i == 4 { // idle, iowait
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, 0, false
			}
			busy += time.Duration(n) * (time.Second / 100)
		}
		found = true
	}
	return busy, cores, found && cores > 0
}

// processCPU returns the user plus system CPU time process pid has used,
// from /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s, which
// is USER_HZ on every Linux architecture Go supports); false if unknown.
func processCPU(pid int) (time.Duration, bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return parseProcStatCPU(string(b))
}

func parseProcStatCPU(stat string) (time.Duration, bool) {
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * (time.Second / 100), true
}

// selfCPU is the user plus system CPU time this process (the load
// generator) has used, from getrusage: microseconds, where /proc has
// hundredths of a second.
func selfCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
