/* SPDX-License-Identifier: GPL-2.0-only */
/* Functions of the drbd-rs C shim (shim.c) that the Rust side (sys/ffi.rs) calls. */
#ifndef DRBD_RS_SHIM_H
#define DRBD_RS_SHIM_H

#include <linux/blkdev.h>
#include <linux/netlink.h>

struct genl_info;
struct seq_file;

int shim_genl_register(void);
void shim_genl_unregister(void);
const void *shim_info_payload(struct genl_info *info, u32 *len, u8 *cmd);
bool shim_info_capable_sys_admin(struct sk_buff *skb);
const void *shim_cb_payload(struct netlink_callback *cb, u32 *len, u8 *cmd);
long *shim_cb_args(struct netlink_callback *cb);
int shim_genl_reply(struct genl_info *info, u8 cmd, const void *user_hdr, const void *attrs,
		    u32 attrs_len);
int shim_genl_dump_put(struct sk_buff *skb, struct netlink_callback *cb, u8 cmd,
		       const void *user_hdr, const void *attrs, u32 attrs_len);
int shim_genl_multicast(u8 cmd, u32 seq, const void *user_hdr, const void *attrs, u32 attrs_len);
int shim_blk_register(void);
void shim_blk_unregister(void);
struct gendisk *shim_alloc_disk(u32 minor, void *private_data);
void *shim_disk_private(struct gendisk *disk);
int shim_disk_stack_limits(struct gendisk *disk, struct block_device *bdev);
u64 shim_bdev_nr_sectors(struct block_device *bdev);
struct block_device *shim_file_bdev(struct file *file);
void *shim_bio_disk_private(struct bio *bio);
struct bio *shim_bio_clone(struct bio *bio, struct block_device *bdev);
void shim_clone_set_acct(struct bio *clone, unsigned long start);
unsigned long shim_clone_acct(struct bio *clone);
struct bio *shim_bio_alloc_page(struct block_device *bdev, u64 sector, struct page *page,
				blk_opf_t opf);
u32 shim_bio_op(struct bio *bio);
int shim_proc_create(void);
void shim_proc_remove(void);

struct socket;
int shim_sock_create_tcp(struct socket **res);
void shim_sock_tune(struct socket *sock, bool listener);
void shim_sock_set_rcvtimeo(struct socket *sock, long timeo);
void shim_sock_set_sndtimeo(struct socket *sock, long timeo);
long shim_msecs_to_jiffies(u32 ms);
int shim_bio_segments(struct bio *bio, struct bio_vec *out, unsigned int max);
unsigned int shim_bio_segment_count(struct bio *bio);
bool shim_sendpage_ok(struct page *page);
struct bio *shim_bio_alloc(struct block_device *bdev, u64 sector, unsigned short nr_vecs,
			   blk_opf_t opf);
unsigned int shim_memalloc_noio_save(void);
void shim_memalloc_noio_restore(unsigned int flags);
u64 shim_bio_sector(struct bio *bio);
u32 shim_bio_opf(struct bio *bio);
unsigned long shim_spin_lock_irqsave(spinlock_t *lock);
void shim_spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags);
void shim_usermode_helper(char *buf, size_t len);

struct crypto_shash;
void shim_crypto_free_shash(struct crypto_shash *tfm);
unsigned int shim_crypto_shash_digestsize(struct crypto_shash *tfm);

#endif
