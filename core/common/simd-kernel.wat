;; Word-parallel plane operations in WebAssembly SIMD: 16 bytes per instruction, four per loop turn.
;; Every function takes byte offsets into memory and a byte length that is a multiple of 64.
(module
  (memory (export "memory") 5)

  (func (export "or") (param $d i32) (param $a i32) (param $b i32) (param $n i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $d) (local.get $n)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $d) (local.get $end)))
      (v128.store offset=0 (local.get $d) (v128.or (v128.load offset=0 (local.get $a)) (v128.load offset=0 (local.get $b))))
      (v128.store offset=16 (local.get $d) (v128.or (v128.load offset=16 (local.get $a)) (v128.load offset=16 (local.get $b))))
      (v128.store offset=32 (local.get $d) (v128.or (v128.load offset=32 (local.get $a)) (v128.load offset=32 (local.get $b))))
      (v128.store offset=48 (local.get $d) (v128.or (v128.load offset=48 (local.get $a)) (v128.load offset=48 (local.get $b))))
      (local.set $d (i32.add (local.get $d) (i32.const 64)))
      (local.set $a (i32.add (local.get $a) (i32.const 64)))
      (local.set $b (i32.add (local.get $b) (i32.const 64)))
      (br $l))))

  (func (export "andnot") (param $d i32) (param $a i32) (param $b i32) (param $n i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $d) (local.get $n)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $d) (local.get $end)))
      (v128.store offset=0 (local.get $d) (v128.andnot (v128.load offset=0 (local.get $a)) (v128.load offset=0 (local.get $b))))
      (v128.store offset=16 (local.get $d) (v128.andnot (v128.load offset=16 (local.get $a)) (v128.load offset=16 (local.get $b))))
      (v128.store offset=32 (local.get $d) (v128.andnot (v128.load offset=32 (local.get $a)) (v128.load offset=32 (local.get $b))))
      (v128.store offset=48 (local.get $d) (v128.andnot (v128.load offset=48 (local.get $a)) (v128.load offset=48 (local.get $b))))
      (local.set $d (i32.add (local.get $d) (i32.const 64)))
      (local.set $a (i32.add (local.get $a) (i32.const 64)))
      (local.set $b (i32.add (local.get $b) (i32.const 64)))
      (br $l))))

  (func (export "and") (param $d i32) (param $a i32) (param $b i32) (param $n i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $d) (local.get $n)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $d) (local.get $end)))
      (v128.store offset=0 (local.get $d) (v128.and (v128.load offset=0 (local.get $a)) (v128.load offset=0 (local.get $b))))
      (v128.store offset=16 (local.get $d) (v128.and (v128.load offset=16 (local.get $a)) (v128.load offset=16 (local.get $b))))
      (v128.store offset=32 (local.get $d) (v128.and (v128.load offset=32 (local.get $a)) (v128.load offset=32 (local.get $b))))
      (v128.store offset=48 (local.get $d) (v128.and (v128.load offset=48 (local.get $a)) (v128.load offset=48 (local.get $b))))
      (local.set $d (i32.add (local.get $d) (i32.const 64)))
      (local.set $a (i32.add (local.get $a) (i32.const 64)))
      (local.set $b (i32.add (local.get $b) (i32.const 64)))
      (br $l))))

  (func (export "xor") (param $d i32) (param $a i32) (param $b i32) (param $n i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $d) (local.get $n)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $d) (local.get $end)))
      (v128.store offset=0 (local.get $d) (v128.xor (v128.load offset=0 (local.get $a)) (v128.load offset=0 (local.get $b))))
      (v128.store offset=16 (local.get $d) (v128.xor (v128.load offset=16 (local.get $a)) (v128.load offset=16 (local.get $b))))
      (v128.store offset=32 (local.get $d) (v128.xor (v128.load offset=32 (local.get $a)) (v128.load offset=32 (local.get $b))))
      (v128.store offset=48 (local.get $d) (v128.xor (v128.load offset=48 (local.get $a)) (v128.load offset=48 (local.get $b))))
      (local.set $d (i32.add (local.get $d) (i32.const 64)))
      (local.set $a (i32.add (local.get $a) (i32.const 64)))
      (local.set $b (i32.add (local.get $b) (i32.const 64)))
      (br $l))))

  ;; Set bits in [p, p + n).
  (func (export "popcount") (param $p i32) (param $n i32) (result i32)
    (local $end i32) (local $acc v128) (local $v v128)
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
      ;; Per 64 bytes: byte counts (≤ 8) summed pairwise to 16-bit lanes (≤ 64), then into 32-bit accumulators.
      (local.set $v (i16x8.add
        (i16x8.add
          (i16x8.extadd_pairwise_i8x16_u (i8x16.popcnt (v128.load offset=0 (local.get $p))))
          (i16x8.extadd_pairwise_i8x16_u (i8x16.popcnt (v128.load offset=16 (local.get $p)))))
        (i16x8.add
          (i16x8.extadd_pairwise_i8x16_u (i8x16.popcnt (v128.load offset=32 (local.get $p))))
          (i16x8.extadd_pairwise_i8x16_u (i8x16.popcnt (v128.load offset=48 (local.get $p)))))))
      (local.set $acc (i32x4.add (local.get $acc) (i32x4.extadd_pairwise_i16x8_u (local.get $v))))
      (local.set $p (i32.add (local.get $p) (i32.const 64)))
      (br $l)))
    (i32.add
      (i32.add (i32x4.extract_lane 0 (local.get $acc)) (i32x4.extract_lane 1 (local.get $acc)))
      (i32.add (i32x4.extract_lane 2 (local.get $acc)) (i32x4.extract_lane 3 (local.get $acc)))))
)
