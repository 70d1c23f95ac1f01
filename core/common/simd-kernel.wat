;; Word-parallel XOR in WebAssembly SIMD (RAID parity): 16 bytes per instruction, four per loop turn.
;; Plane algebra compiles its own fused kernels (core/planes/kernel-compiler.ts).
;; The function takes byte offsets into memory and a byte length that is a multiple of 64.
(module
  (memory (export "memory") 5)

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
      (br $l)))))
